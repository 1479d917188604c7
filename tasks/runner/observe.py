"""What the agent shows the model of a page: URL, title, the interactive elements and the visible text.

Each interactive element gets a reference number for this observation and, computed in the
page, a CSS selector that matches it alone (its id, a unique attribute, or a path of
``:nth-of-type`` steps from the nearest ancestor with a unique id). The model names an element
by its number; the agent turns the number into that selector before the step runs, so the
history and the replay script hold the selector and replay with no model.

Everything read here is the page's: untrusted text. ``render_observation`` puts it between
markers that the page cannot close (any marker in the page's text is defused), and the system
prompt tells the model that what is inside is data, never instructions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_ELEMENTS = 150  # elements listed per observation: a page with thousands of links gets the first ones
MAX_LABEL_LENGTH = 80
DEFAULT_TEXT_BUDGET = 4_000  # characters of visible text per observation
PAGE_OPEN, PAGE_CLOSE = "<page_content>", "</page_content>"

# Runs in the page. Returns {title, text, elements: [{tag, type, role, label, value, href, selector}]}.
# Only visible elements count (a hidden one cannot be clicked); the selector is verified unique.
_OBSERVE_JS = r"""
([maxElements, maxLabel, textBudget]) => {
  const INTERACTIVE = 'a[href], button, input:not([type="hidden"]), textarea, select, summary, ' +
    '[role="button"], [role="link"], [role="textbox"], [role="searchbox"], [role="checkbox"], ' +
    '[role="radio"], [role="tab"], [role="menuitem"], [role="option"], [role="switch"], ' +
    '[contenteditable=""], [contenteditable="true"], [onclick]';
  const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();
  const cut = (s, n) => (s.length > n ? s.slice(0, n - 1) + '…' : s);
  const unique = (sel) => { try { return document.querySelectorAll(sel).length === 1; } catch (e) { return false; } };
  const quoted = (v) => '"' + v.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
  const visible = (el) => {
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) return false;
    const style = getComputedStyle(el);
    return style.visibility !== 'hidden' && style.display !== 'none';
  };
  const pathFrom = (el) => {
    const parts = [];
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      if (node !== el && node.id && unique('#' + CSS.escape(node.id))) {
        parts.unshift('#' + CSS.escape(node.id));
        break;
      }
      const tag = node.tagName.toLowerCase();
      const parent = node.parentElement;
      if (!parent) { parts.unshift(tag); break; }
      const same = Array.from(parent.children).filter((c) => c.tagName === node.tagName);
      parts.unshift(same.length === 1 ? tag : tag + ':nth-of-type(' + (same.indexOf(node) + 1) + ')');
    }
    return parts.join(' > ');
  };
  const selectorOf = (el) => {
    const tag = el.tagName.toLowerCase();
    if (el.id && unique('#' + CSS.escape(el.id))) return '#' + CSS.escape(el.id);
    for (const attr of ['name', 'data-testid', 'aria-label', 'placeholder', 'href']) {
      const value = el.getAttribute(attr);
      if (value && value.length <= 200) {
        const sel = tag + '[' + attr + '=' + quoted(value) + ']';
        if (unique(sel)) return sel;
      }
    }
    const path = pathFrom(el);
    return unique(path) ? path : null;
  };
  const labelOf = (el) => {
    const byId = el.id ? document.querySelector('label[for="' + CSS.escape(el.id) + '"]') : null;
    return norm(el.getAttribute('aria-label') || (byId && byId.innerText) || el.innerText ||
                el.getAttribute('placeholder') || el.getAttribute('title') || el.getAttribute('alt') ||
                (el.type === 'submit' || el.type === 'button' ? el.value : '') || el.getAttribute('name') || '');
  };
  const elements = [];
  for (const el of document.querySelectorAll(INTERACTIVE)) {
    if (elements.length >= maxElements) break;
    if (!visible(el) || el.disabled) continue;
    const selector = selectorOf(el);
    if (!selector) continue;
    const typed = el.tagName === 'INPUT' || el.tagName === 'TEXTAREA';
    elements.push({
      tag: el.tagName.toLowerCase(),
      type: el.getAttribute('type') || '',
      role: el.getAttribute('role') || '',
      label: cut(labelOf(el), maxLabel),
      value: typed && el.type !== 'password' ? cut(norm(el.value), maxLabel) : '',
      href: el.tagName === 'A' ? cut(el.href, 200) : '',
      selector,
    });
  }
  const text = document.body ? norm(document.body.innerText) : '';
  return { title: cut(norm(document.title), 200), text: cut(text, textBudget), elements };
}
"""


@dataclass(frozen=True)
class PageElement:
    """One interactive element of an observation; ``ref`` is its number there, ``selector`` matches it alone."""

    ref: int
    tag: str
    selector: str
    type: str = ""
    role: str = ""
    label: str = ""
    value: str = ""
    href: str = ""

    def describe(self) -> str:
        kind = self.tag + (f" type={self.type}" if self.type else "") + (f" role={self.role}" if self.role else "")
        parts = [f"[{self.ref}] {kind}"]
        if self.label:
            parts.append(f'"{self.label}"')
        if self.value:
            parts.append(f'value="{self.value}"')
        if self.href:
            parts.append(f"href={self.href}")
        return " ".join(parts)


@dataclass(frozen=True)
class Observation:
    url: str
    title: str
    text: str
    elements: tuple[PageElement, ...] = ()
    screenshot: bytes | None = field(default=None, repr=False)

    def selector_for(self, ref: object) -> str | None:
        """The selector of element number ``ref`` (an int from 1), or None when there is no such element."""
        if isinstance(ref, bool) or not isinstance(ref, int) or not 1 <= ref <= len(self.elements):
            return None
        return self.elements[ref - 1].selector


def observe(page, *, text_budget: int = DEFAULT_TEXT_BUDGET, screenshot: bool = False) -> Observation:
    """Read the page as the model will see it (on the browser thread). A page that is navigating
    away, or has no document yet, is an observation with just its URL."""
    try:
        found = page.evaluate(_OBSERVE_JS, [MAX_ELEMENTS, MAX_LABEL_LENGTH, text_budget])
    except Exception:  # noqa: BLE001 -- a page mid-navigation cannot be read; the model still gets the URL
        found = {"title": "", "text": "", "elements": []}
    elements = tuple(
        PageElement(
            ref=number, **{key: str(item.get(key) or "") for key in PageElement.__dataclass_fields__ if key != "ref"}
        )
        for number, item in enumerate(found.get("elements") or [], start=1)
    )
    image = None
    if screenshot:
        try:
            image = page.screenshot(type="jpeg", quality=60, scale="css", timeout=5_000)
        except Exception:  # noqa: BLE001 -- the text observation is enough to go on
            image = None
    return Observation(
        url=page.url,
        title=str(found.get("title") or ""),
        text=str(found.get("text") or ""),
        elements=elements,
        screenshot=image,
    )


def _defused(text: str) -> str:
    """The page's text with anything that looks like our markers broken, so it cannot end the block."""
    return text.replace("<page_content", "<page-content").replace("</page_content", "</page-content")


def render_observation(observation: Observation) -> str:
    """The observation as the text the model reads: the page's own content inside the markers."""
    listed = "\n".join(element.describe() for element in observation.elements) or "(none)"
    body = "\n".join(
        [
            f"URL: {observation.url}",
            f"Title: {observation.title}",
            "Interactive elements (use the number as `ref`):",
            listed,
            "Visible text:",
            observation.text or "(empty)",
        ]
    )
    return f"{PAGE_OPEN}\n{_defused(body)}\n{PAGE_CLOSE}"
