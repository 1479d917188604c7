"""The scopes an API key may be limited to, and how a view declares the one each of its operations needs.

A view declares `required_scopes`: keyed by action on a viewset ("list", "create", "cancel"...),
by HTTP method on a plain APIView ("GET", "DELETE"; HEAD counts as GET). A value is a scope,
`NO_SCOPE` (any key may call it: hello, /auth/validate, reading your own API keys) or `FULL_ACCESS`
(an endpoint outside the vocabulary, such as the user admin: only a key holding every scope).
`config.permissions.APIKeyScope` enforces it; an OpenAPI hook can read the same declaration.
This module imports nothing, so models and settings may use it.
"""

PROFILE_READ = "profile:read"
POSTS_READ = "posts:read"
POSTS_WRITE = "posts:write"
TASKS_READ = "tasks:read"
TASKS_WRITE = "tasks:write"
RESULTS_READ = "results:read"
RESULTS_WRITE = "results:write"

# In the order keys show them.
ALL_SCOPES = (PROFILE_READ, POSTS_READ, POSTS_WRITE, TASKS_READ, TASKS_WRITE, RESULTS_READ, RESULTS_WRITE)

NO_SCOPE = None
FULL_ACCESS = "*"
# What a view without a declaration for the operation gets: the strictest answer (a test walks the
# URLconf so that no API-key-reachable operation is left undeclared).
UNDECLARED = FULL_ACCESS


def all_scopes() -> list[str]:
    """Every scope: what a key created without `scopes` holds (the model field's default)."""
    return list(ALL_SCOPES)


def canonical(scopes) -> list[str]:
    """`scopes` (known, distinct) in the order of ALL_SCOPES, so equal sets are stored alike."""
    return [scope for scope in ALL_SCOPES if scope in scopes]


def declared_scope(view, method: str):
    """The scope `view` declares for this request's operation: a scope, NO_SCOPE, FULL_ACCESS, or
    UNDECLARED when the view says nothing about it. A viewset is looked up by its action, falling back
    to the method for requests that map to no action (OPTIONS)."""
    if method == "OPTIONS":
        return NO_SCOPE  # the endpoint's description, no data
    declared = getattr(view, "required_scopes", None) or {}
    method = "GET" if method == "HEAD" else method
    action = getattr(view, "action", None)
    if action is not None and action in declared:
        return declared[action]
    return declared.get(method, UNDECLARED)


def is_declared(view, method: str) -> bool:
    declared = getattr(view, "required_scopes", None) or {}
    action = getattr(view, "action", None)
    return (action is not None and action in declared) or ("GET" if method == "HEAD" else method) in declared


def missing_scopes(*, held, needed) -> list[str]:
    """The scopes a key holding `held` lacks for an operation needing `needed` (empty: allowed)."""
    if needed is NO_SCOPE:
        return []
    wanted = ALL_SCOPES if needed == FULL_ACCESS else (needed,)
    return [scope for scope in wanted if scope not in held]
