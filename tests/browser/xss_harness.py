"""Render markup in Chromium the way JupyterLab renders trusted output, and catch any script.

JupyterLab inserts a trusted ``text/html`` output with ``innerHTML`` and then
re-creates each ``<script>`` element so that it runs (``renderHTML`` and its
``evalInnerHTMLScriptTags``). `ScriptCatcher` does the same inside a page served
(through Playwright routing, no network) with a report-only Content Security Policy
that allows only the harness's own nonce'd script. Script counts as having run
when any of these is seen:

- a dialog (``alert``/``confirm``/``prompt``) in any frame;
- a CSP report (``securitypolicyviolation``) for script in any frame: an inline
  ``<script>``, an event handler that fired, a ``javascript:`` URL that was
  followed, a script URL that was to be loaded;
- a request for a script resource (all requests off the page are refused);
- after the page loaded, each element's ``on*`` handlers are fired by dispatching
  their events, and any element whose link or form target the browser resolves
  to a ``javascript:``/``vbscript:`` URL counts as armed (links, forms, frames).

Nothing here sleeps: the page's ``load`` event (which waits for every image and
script the markup asked for) and one turn of the page's own event loop bound
each render.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field

from playwright.sync_api import Dialog, Page, Request, Route

ORIGIN = "http://sandbox-magic.test"
HARNESS_URL = f"{ORIGIN}/harness.html"
REPORT_PATH = "/csp-report"

# Runs in every frame before its own script: forwards CSP reports to the test.
_INIT_SCRIPT = """
document.addEventListener('securitypolicyviolation', (event) => {
  if (event.effectiveDirective.startsWith('script') || event.effectiveDirective === 'object-src') {
    window.__xssReport && window.__xssReport(
      event.effectiveDirective + ': ' + (event.sample || event.blockedURI || ''));
  }
}, true);
"""

# JupyterLab's trusted path: innerHTML, then re-create every script so that it runs.
_RENDER_SCRIPT = """
window.__renderInto = (hosts, markup, index) => {
  const host = document.createElement('div');
  host.className = 'jp-RenderedHTMLCommon jp-RenderedHTML';
  host.dataset.vector = String(index);
  hosts.appendChild(host);
  try {
    host.innerHTML = markup;
    for (const old of Array.from(host.getElementsByTagName('script'))) {
      const fresh = document.createElement('script');
      for (const attr of Array.from(old.attributes)) fresh.setAttribute(attr.name, attr.value);
      fresh.textContent = old.textContent;
      old.parentNode.replaceChild(fresh, old);
    }
  } catch (error) {}
  return host;
};
const payloads = JSON.parse(document.getElementById('payloads').textContent);
const hosts = document.getElementById('hosts');
payloads.forEach((markup, index) => window.__renderInto(hosts, markup, index));
"""

# Render one markup into the loaded page; resolve once its images, frames and
# scripts have loaded or failed (bounded by a deadline).
_RENDER_IN_PLACE = """
async (markup) => {
  const hosts = document.getElementById('hosts');
  hosts.replaceChildren();
  const host = window.__renderInto(hosts, markup, 0);
  const loading = Array.from(host.querySelectorAll('img, iframe, script[src]'))
    .filter((element) => !(element.tagName === 'IMG' && element.complete))
    .map((element) => new Promise((done) => {
      element.addEventListener('load', done, {once: true});
      element.addEventListener('error', done, {once: true});
    }));
  await Promise.race([Promise.all(loading), new Promise((done) => setTimeout(done, 2000))]);
  return true;
}
"""

# After load: fire every inline handler and list every armed script URL.
_PROVOKE = """
() => {
  const armed = [];
  // Where a browser follows or loads a URL as a document (where javascript: runs).
  const navigable = {A: ['href', 'xlink:href'], AREA: ['href'], FORM: ['action'],
    BUTTON: ['formaction'], INPUT: ['formaction'], IFRAME: ['src'], FRAME: ['src'],
    EMBED: ['src'], OBJECT: ['data'], a: ['href', 'xlink:href']};
  const hosts = document.getElementById('hosts');
  if (!hosts) return ['page replaced'];
  for (const element of Array.from(hosts.querySelectorAll('*'))) {
    for (const attr of Array.from(element.attributes)) {
      const name = attr.name.toLowerCase();
      if (name.startsWith('on')) {
        try { element.dispatchEvent(new Event(name.slice(2))); } catch (error) {}
      }
      if ((navigable[element.tagName] || []).includes(name)) {
        let protocol = '';
        try { protocol = new URL(attr.value, document.baseURI).protocol; } catch (error) {}
        if (protocol === 'javascript:' || protocol === 'vbscript:') {
          armed.push(element.tagName + ' ' + name + '=' + attr.value.slice(0, 60));
        }
      }
    }
  }
  return armed;
}
"""

# One turn of the page's event loop, for tasks the handlers queued (javascript: links).
_SETTLE = "() => new Promise(done => setTimeout(() => done(true), 0))"


@dataclass
class Findings:
    """What ran (or would have run) for one render."""

    dialogs: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    scripts_fetched: list[str] = field(default_factory=list)
    armed: list[str] = field(default_factory=list)

    @property
    def ran(self) -> bool:
        return bool(self.dialogs or self.violations or self.scripts_fetched or self.armed)

    def summary(self) -> str:
        parts = [
            f"{label}: {values[:3]}"
            for label, values in (
                ("dialogs", self.dialogs),
                ("csp", self.violations),
                ("script fetches", self.scripts_fetched),
                ("armed URLs", self.armed),
            )
            if values
        ]
        return "; ".join(parts)


class ScriptCatcher:
    """One Chromium page that renders batches of markup and reports any script that ran."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.nonce = secrets.token_hex(12)
        self._html = ""
        self._findings = Findings()
        page.add_init_script(_INIT_SCRIPT)
        page.expose_binding("__xssReport", lambda _source, detail: self._violation(detail))
        page.on("dialog", self._dialog)
        page.route("**/*", self._route)

    def _violation(self, detail: str) -> None:
        self._findings.violations.append(str(detail))

    def _dialog(self, dialog: Dialog) -> None:
        self._findings.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def _route(self, route: Route, request: Request) -> None:
        url = request.url
        if (
            url == HARNESS_URL
            and request.is_navigation_request()
            and request.frame == self.page.main_frame
        ):
            policy = f"script-src 'nonce-{self.nonce}'; object-src 'none'; report-uri {REPORT_PATH}"
            route.fulfill(
                status=200,
                content_type="text/html; charset=utf-8",
                headers={"Content-Security-Policy-Report-Only": policy},
                body=self._html,
            )
            return
        if url.startswith(ORIGIN + REPORT_PATH):
            route.fulfill(status=204)
            return
        if request.resource_type == "script":
            self._findings.scripts_fetched.append(url[:120])
        route.abort()

    def _page_html(self, markups: list[str]) -> str:
        # "<" escaped so that no payload can end the JSON's script element.
        data = json.dumps(markups).replace("<", "\\u003c")
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>harness</title></head>"
            "<body><div id='hosts'></div>"
            f"<script type='application/json' id='payloads'>{data}</script>"
            f"<script nonce='{self.nonce}'>{_RENDER_SCRIPT}</script></body></html>"
        )

    def render_each(self, markups: list[str]) -> list[Findings]:
        """Render each markup alone, one after the other in the same page (faster than
        `render` per markup; the page is reloaded whenever a markup broke it)."""
        results: list[Findings] = []
        loaded = False
        for markup in markups:
            self._findings = findings = Findings()
            try:
                if not loaded:
                    self._html = self._page_html([])
                    self.page.goto(HARNESS_URL, wait_until="load", timeout=30_000)
                    loaded = True
                self.page.evaluate(_RENDER_IN_PLACE, markup)
                findings.armed.extend(self.page.evaluate(_PROVOKE))
                self.page.evaluate(_SETTLE)
                loaded = self.page.url == HARNESS_URL and bool(
                    self.page.evaluate("() => !!document.getElementById('hosts')")
                )
            except Exception as error:  # the markup navigated or broke the page
                loaded = False
                if not findings.ran:
                    findings.armed.append(f"page lost: {type(error).__name__}")
            results.append(findings)
        self._findings = Findings()
        return results

    def render(self, markups: list[str]) -> Findings:
        """Render ``markups`` (each in its own output area) and report what ran."""
        self._findings = findings = Findings()
        self._html = self._page_html(markups)
        try:
            self.page.goto(HARNESS_URL, wait_until="load", timeout=30_000)
            findings.armed.extend(self.page.evaluate(_PROVOKE))
            self.page.evaluate(_SETTLE)
        except Exception as error:  # the markup navigated or broke the page
            if not findings.ran:
                findings.armed.append(f"page lost: {type(error).__name__}")
        self._findings = Findings()
        return findings
