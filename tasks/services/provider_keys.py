"""Provider keys: a user's API keys for language-model providers, stored sealed, opened only for a run.

A client sends its key in plain (over TLS) or encrypted with the server's RSA public key
(RSA-OAEP-SHA256, base64, as the original system's clients did); either way it is sealed
at once (config.crypto: a data key per secret, AES-256-GCM, the data key wrapped by the
current RSA key) and only `provider_key_for_run`, in the worker, opens it again. The envelope
is bound to its owner and provider (associated data), so a sealed key copied onto another
user's row does not open. Nothing here logs, returns or raises a key, plain or encrypted.
"""

import base64
import binascii
import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts import services as account_services
from accounts.models import SecurityEventType
from config import crypto
from config.errors import InvalidInput
from tasks import runner
from tasks.models import KEY_PROVIDERS, PROVIDER_KEY_NAME_MAX_LENGTH, URL_MAX_LENGTH, LLMProvider, ProviderKey
from tasks.runner.egress import EgressRefused

logger = logging.getLogger(__name__)

API_KEY_MAX_LENGTH = 1000
# A key shorter than this shows no hint: its last 4 characters would be too much of it.
HINT_MIN_KEY_LENGTH = 12
# Far more than any RSA ciphertext in base64 (RSA-8192: 684 characters, with line breaks).
ENCRYPTED_API_KEY_MAX_LENGTH = 2048
LAST_USED_RESOLUTION = timedelta(seconds=60)
REENCRYPT_BATCH = 100

# Printable ASCII without spaces: what every provider's keys are made of, and what can go into an
# HTTP header (the SDKs send the key as one) without being mangled or splitting it.
_KEY_CHARACTERS = re.compile(r"[\x21-\x7e]+")
_PROVIDERS = {value for value, _ in KEY_PROVIDERS}


@dataclass(frozen=True)
class RunKey:
    """The key one agent run calls its provider with, and where.

    `base_url` empty means the SDK's default endpoint. `base_url_trusted` is True when the
    operator chose the address (OPENAI_BASE_URL, or the SDK's default): the provider client
    then need not apply the egress policy to it; a user's base_url must be checked at connect time.
    `provider_key_id` is None for the server's own key.
    """

    api_key: str = field(repr=False)
    base_url: str
    base_url_trusted: bool
    provider_key_id: int | None


def _associated_data(*, owner_id: int, provider: str) -> bytes:
    return f"gatehouse.provider-key.v1:{owner_id}:{provider}".encode()


# CREATE AND DELETE
# ------------------------------------------------------------------------------


def _clean_name(name: object) -> str:
    if not isinstance(name, str | None):
        raise InvalidInput({"name": ["Must be a string."]})
    name = (name or "").strip()
    if len(name) > PROVIDER_KEY_NAME_MAX_LENGTH:
        raise InvalidInput({"name": [f"Ensure this field has no more than {PROVIDER_KEY_NAME_MAX_LENGTH} characters."]})
    return name


def _egress_refusal(base_url: str) -> str | None:
    """Why the server may not call `base_url` for a user (the egress policy), or None.

    The early, friendly check: the provider client checks again when it connects, on the address it
    connects to (a name that resolves elsewhere later is refused then). A name that does not resolve
    now is left to that check too.
    """
    parts = urlsplit(base_url)
    policy = runner.EgressPolicy.from_entries(settings.EGRESS_ALLOWLIST)
    try:
        policy.connect_address(parts.hostname, parts.port or (443 if parts.scheme.lower() == "https" else 80))
    except EgressRefused as refused:
        return f"The server may not call {refused.host}: {refused.problem} (see EGRESS_ALLOWLIST)."
    except (OSError, ValueError):
        return None
    return None


def _clean_base_url(*, provider: str, base_url: object) -> str:
    if base_url is None:
        base_url = ""
    if not isinstance(base_url, str):
        raise InvalidInput({"base_url": ["Must be a string."]})
    base_url = base_url.strip()
    if not base_url:
        if provider == LLMProvider.OPENAI_COMPATIBLE:
            raise InvalidInput({"base_url": ["Required for openai_compatible: the server's address, e.g. .../v1."]})
        return ""
    if len(base_url) > URL_MAX_LENGTH:
        raise InvalidInput({"base_url": [f"Must be at most {URL_MAX_LENGTH} characters."]})
    if problem := runner.url_problem(base_url):
        raise InvalidInput({"base_url": [problem]})
    parts = urlsplit(base_url)
    if parts.username is not None or parts.password is not None:
        raise InvalidInput({"base_url": ["Must not carry credentials: the key goes in api_key."]})
    if parts.query or parts.fragment:
        raise InvalidInput({"base_url": ["Must have no query or fragment."]})
    if refusal := _egress_refusal(base_url):
        raise InvalidInput({"base_url": [refusal]})
    return base_url


def _clean_api_key(value: str, *, field_name: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidInput({field_name: ["The key may not be blank."]})
    if len(value) > API_KEY_MAX_LENGTH:
        raise InvalidInput({field_name: [f"The key must be at most {API_KEY_MAX_LENGTH} characters."]})
    if not _KEY_CHARACTERS.fullmatch(value):
        raise InvalidInput({field_name: ["The key must be printable ASCII characters without spaces."]})
    return value


def _decode_base64(text: str) -> bytes:
    # `openssl base64` and coreutils' base64 wrap their lines: whitespace is not part of the data.
    compact = re.sub(r"\s+", "", text)
    try:
        if "-" in compact or "_" in compact:  # the URL-safe alphabet, padding optional
            return base64.urlsafe_b64decode(compact + "=" * (-len(compact) % 4))
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput({"encrypted_api_key": ["Not valid base64."]}) from None


def _decrypt_api_key(*, encrypted_api_key: object, kid: object) -> str:
    if not isinstance(encrypted_api_key, str):
        raise InvalidInput({"encrypted_api_key": ["Must be a string: base64 of the RSA-OAEP ciphertext."]})
    if len(encrypted_api_key) > ENCRYPTED_API_KEY_MAX_LENGTH:
        raise InvalidInput({"encrypted_api_key": [f"Must be at most {ENCRYPTED_API_KEY_MAX_LENGTH} characters."]})
    if kid is not None and not (isinstance(kid, str) and kid.strip()):
        raise InvalidInput({"kid": ["Must be the kid of GET /api/v1/crypto/public-key, or omitted."]})
    ciphertext = _decode_base64(encrypted_api_key)
    try:
        plaintext = crypto.rsa_oaep_decrypt(ciphertext, kid.strip() if kid else None)
    except crypto.UnknownKeyId:
        raise InvalidInput(
            {"kid": ["Unknown kid: fetch the current public key from GET /api/v1/crypto/public-key."]}
        ) from None
    except crypto.DecryptionFailed:
        raise InvalidInput(
            {
                "encrypted_api_key": [
                    "Does not decrypt: encrypt with RSA-OAEP, SHA-256 (OAEP and MGF1), with the key of "
                    "GET /api/v1/crypto/public-key, then base64."
                ]
            }
        ) from None
    try:
        text = plaintext.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput({"encrypted_api_key": ["The decrypted key is not UTF-8 text."]}) from None
    return _clean_api_key(text, field_name="encrypted_api_key")


def _hint(api_key: str) -> str:
    return api_key[-4:] if len(api_key) >= HINT_MIN_KEY_LENGTH else ""


def provider_key_create(
    *,
    owner,
    provider: str,
    name: str = "",
    base_url: str = "",
    api_key: str | None = None,
    encrypted_api_key: str | None = None,
    kid: str | None = None,
) -> ProviderKey:
    """Store `owner`'s key for `provider`, sealed. Exactly one of `api_key` (plain) or `encrypted_api_key`
    (base64 of RSA-OAEP-SHA256 with the published key; `kid` names which, None: any) is given.

    InvalidInput (400, field-keyed) for both or neither, a ciphertext that does not decrypt, bad base64,
    an unknown kid, a bad or refused base_url (required for openai_compatible), a blank or odd key.
    """
    if provider not in _PROVIDERS:
        raise InvalidInput({"provider": [f"One of {', '.join(sorted(_PROVIDERS))}."]})
    if (api_key is None) == (encrypted_api_key is None):
        message = "Give exactly one of api_key (plain, over TLS) or encrypted_api_key (RSA-OAEP, base64)."
        raise InvalidInput({"api_key": [message], "encrypted_api_key": [message]})
    name = _clean_name(name)
    base_url = _clean_base_url(provider=provider, base_url=base_url)
    if api_key is not None:
        if not isinstance(api_key, str):
            raise InvalidInput({"api_key": ["Must be a string."]})
        plaintext = _clean_api_key(api_key, field_name="api_key")
    else:
        plaintext = _decrypt_api_key(encrypted_api_key=encrypted_api_key, kid=kid)
    sealed = crypto.seal(plaintext.encode(), associated_data=_associated_data(owner_id=owner.pk, provider=provider))
    key = ProviderKey.objects.create(
        owner=owner,
        provider=provider,
        name=name,
        base_url=base_url,
        hint=_hint(plaintext),
        kid=sealed.kid,
        wrapped_key=sealed.wrapped_key,
        nonce=sealed.nonce,
        ciphertext=sealed.ciphertext,
    )
    logger.info("Provider key %s (%s) stored for user %s, sealed with RSA key %s", key.pk, provider, owner.pk, key.kid)
    account_services.security_event_record(
        user=owner, type=SecurityEventType.PROVIDER_KEY_CREATED, detail={"id": key.pk, "provider": provider}
    )
    return key


def provider_key_delete(*, key: ProviderKey) -> None:
    """Delete a stored key. Tasks naming it fail at their next initiate (400), never fall back to another key."""
    key_id, owner_id, provider = key.pk, key.owner_id, key.provider
    key.delete()
    logger.info("Provider key %s of user %s deleted", key_id, owner_id)
    account_services.security_event_record(
        user=key.owner, type=SecurityEventType.PROVIDER_KEY_DELETED, detail={"id": key_id, "provider": provider}
    )


# USE IN A RUN
# ------------------------------------------------------------------------------


def _no_key_message(provider: str) -> str:
    return (
        f"No API key for {provider}: add one with POST /api/v1/provider-keys "
        f'{{"provider": "{provider}", "api_key": "..."}} (or encrypted_api_key), '
        "or name one in agent_settings.provider_key_id."
    )


def _key_not_usable(provider_key_id: int, provider: str) -> InvalidInput:
    return InvalidInput(
        {"provider_key_id": [f"No provider key {provider_key_id} of yours for {provider} (deleted, or never was)."]}
    )


def _server_key(provider: str) -> RunKey | None:
    if provider == LLMProvider.OPENAI and settings.OPENAI_API_KEY:
        base_url = settings.OPENAI_BASE_URL
        return RunKey(api_key=settings.OPENAI_API_KEY, base_url=base_url, base_url_trusted=True, provider_key_id=None)
    if provider == LLMProvider.ANTHROPIC and settings.ANTHROPIC_API_KEY:
        return RunKey(api_key=settings.ANTHROPIC_API_KEY, base_url="", base_url_trusted=True, provider_key_id=None)
    return None


def _owner_key(*, owner_id: int, provider: str, provider_key_id: int | None):
    """The owner's key the run would use: the one named (InvalidInput if not theirs for `provider`), else the
    newest of `provider`, else None."""
    keys = ProviderKey.objects.filter(owner_id=owner_id, provider=provider)
    if provider_key_id is not None:
        key = keys.filter(pk=provider_key_id).first()
        if key is None:
            raise _key_not_usable(provider_key_id, provider)
        return key
    return keys.order_by("-created_at", "-id").first()


def _require_key_provider(provider: str) -> None:
    if provider not in _PROVIDERS:
        raise ValueError(f"{provider!r} is not a provider that takes a key")


def provider_key_check(*, owner_id: int, provider: str, provider_key_id: int | None) -> None:
    """What initiate checks, without opening any key: the run will have a key (the named one, the owner's
    newest of the provider, or the server's). InvalidInput naming `provider_key_id` or `llm_provider` if not.
    With provider "none" there is nothing to check."""
    if provider == LLMProvider.NONE:
        return
    _require_key_provider(provider)
    if provider_key_id is not None:
        _owner_key(owner_id=owner_id, provider=provider, provider_key_id=provider_key_id)
        return
    if ProviderKey.objects.filter(owner_id=owner_id, provider=provider).exists() or _server_key(provider):
        return
    raise InvalidInput({"llm_provider": [_no_key_message(provider)]})


def provider_key_owned_check(*, owner_id: int, provider_key_id: int) -> None:
    """What choosing a key in a task's agent settings checks: it is one of the owner's (InvalidInput otherwise).
    Whether it fits the task's provider is initiate's business, once both are settled."""
    if not ProviderKey.objects.filter(owner_id=owner_id, pk=provider_key_id).exists():
        raise InvalidInput({"provider_key_id": [f"No provider key {provider_key_id} of yours."]})


def _touch_last_used(key: ProviderKey) -> None:
    # A conditional UPDATE, at most one write a minute however many runs use the key.
    now = timezone.now()
    ProviderKey.objects.filter(pk=key.pk).filter(
        Q(last_used__isnull=True) | Q(last_used__lt=now - LAST_USED_RESOLUTION)
    ).update(last_used=now)


def provider_key_for_run(*, owner_id: int, provider: str, provider_key_id: int | None) -> RunKey:
    """The key (opened) and address an agent run of `owner_id` calls `provider` with: the key named, else the
    owner's newest of the provider, else the server's own; InvalidInput as `provider_key_check` says otherwise,
    and naming `provider_key_id` when the stored key no longer opens (its RSA key was retired)."""
    _require_key_provider(provider)
    key = _owner_key(owner_id=owner_id, provider=provider, provider_key_id=provider_key_id)
    if key is None:
        server_key = _server_key(provider)
        if server_key is None:
            raise InvalidInput({"llm_provider": [_no_key_message(provider)]})
        return server_key
    try:
        plaintext = crypto.unseal(_sealed(key), associated_data=_associated_data(owner_id=owner_id, provider=provider))
    except crypto.CryptoError:
        logger.error("Provider key %s of user %s does not open (RSA key %s)", key.pk, owner_id, key.kid)
        raise InvalidInput(
            {"provider_key_id": [f"Provider key {key.pk} can no longer be decrypted on this server: store it again."]}
        ) from None
    _touch_last_used(key)
    return RunKey(
        api_key=plaintext.decode(), base_url=key.base_url, base_url_trusted=not key.base_url, provider_key_id=key.pk
    )


# RE-ENCRYPTION AFTER AN RSA KEY ROTATION
# ------------------------------------------------------------------------------


def _sealed(key: ProviderKey) -> crypto.Sealed:
    return crypto.Sealed(
        kid=key.kid, wrapped_key=bytes(key.wrapped_key), nonce=bytes(key.nonce), ciphertext=bytes(key.ciphertext)
    )


def provider_keys_reencrypt() -> int:
    """Re-seal every stored key not wrapped by the current RSA key; returns how many moved.

    In batches, each row locked while it is re-sealed (a concurrent delete waits, a concurrent
    create already uses the current key). A row that does not open is left as it is and logged:
    it keeps its kid, so the caller can tell that its RSA key must not be retired yet.
    """
    current = crypto.keyring().current.kid
    moved = 0
    last_id = 0
    while True:
        with transaction.atomic():
            batch = list(
                ProviderKey.objects.select_for_update()
                .filter(pk__gt=last_id)
                .exclude(kid=current)
                .order_by("pk")[:REENCRYPT_BATCH]
            )
            if not batch:
                return moved
            for key in batch:
                last_id = key.pk
                moved += _reseal(key)


def _reseal(key: ProviderKey) -> int:
    context = _associated_data(owner_id=key.owner_id, provider=key.provider)
    try:
        plaintext = crypto.unseal(_sealed(key), associated_data=context)
    except crypto.CryptoError as error:
        logger.error("Provider key %s does not open and was not re-encrypted: %s", key.pk, error)
        return 0
    sealed = crypto.seal(plaintext, associated_data=context)
    key.kid, key.wrapped_key, key.nonce = sealed.kid, sealed.wrapped_key, sealed.nonce
    key.ciphertext = sealed.ciphertext
    key.save(update_fields=["kid", "wrapped_key", "nonce", "ciphertext", "updated_at"])
    return 1


def provider_key_kids_in_use() -> set[str]:
    """The RSA key ids that stored provider keys are sealed with (they must stay in the keyring)."""
    return set(ProviderKey.objects.values_list("kid", flat=True).distinct())
