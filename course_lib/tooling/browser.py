"""Look at a built deck or site page in headless Chromium, as a projector (1280 x 720) shows it.

Drives the distribution's ``chromium`` over the DevTools protocol (``websocket-client``, which
Jupyter already installs): every request the page makes is recorded, and any that would leave the
machine (not ``file:``, ``data:``, ``blob:`` or ``about:``) is reported; host names do not resolve
in this browser, so nothing can leave in any case. ``python -m course_lib.tooling.browser DECK.html``
prints the report of a deck (``--screenshots DIR`` saves a PNG of every slide that overflows).
"""
from __future__ import annotations

import base64
import json
import re
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

__all__ = ["find_chromium", "Browser", "check_deck", "check_page", "slide_problems", "press_through",
           "screenshot_slides", "deck_summary", "search_snippets", "LOCAL_SCHEMES", "VIEWPORTS"]

LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome:", "devtools:", "chrome-error:")
WIDTH, HEIGHT = 1280, 720

# Waits for MathJax 3 (when the page has it), then reports raw TeX left in prose and math errors.
_MATH_JS = r"""
async function courseMath(root) {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const raw = [];
  const pattern = /\$\$|\$[^\s$][^$]*\$|\\\(|\\\[|\\begin\{/;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {acceptNode(n) {
    for (let e = n.parentElement; e; e = e.parentElement) {
      const t = e.tagName;
      if (t === 'PRE' || t === 'CODE' || t === 'SCRIPT' || t === 'STYLE' || t === 'TEXTAREA' ||
          t === 'MJX-CONTAINER' || (e.classList && (e.classList.contains('jp-OutputArea') ||
          e.classList.contains('highlight') || e.classList.contains('cell_output')))) return NodeFilter.FILTER_REJECT;
    }
    return NodeFilter.FILTER_ACCEPT; }});
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (pattern.test(n.textContent)) raw.push(n.textContent.trim().slice(0, 80));
  }
  return {rendered: document.querySelectorAll('mjx-container').length,
          errors: Array.from(document.querySelectorAll('mjx-merror, [data-mjx-error]')).map(e => (e.getAttribute('data-mjx-error') || e.textContent).slice(0, 80)),
          raw: raw};
}
"""

# Thresholds of the deck check, in the canvas's CSS px (1280 x 720, or 1024 x 768 on a 4:3 screen,
# where the canvas is drawn at scale ~1): type that reads from the back of a room.
MIN_CODE_PX = 20     # code and printed results
MIN_BODY_PX = 24     # Markdown text (paragraphs, list items, table cells)
MIN_FIGURE_SCALE = 0.66  # a figure drawn smaller than this fraction of its natural size has labels under 12 px
VIEWPORTS = ((1280, 720), (1024, 768))

_DECK_JS = _MATH_JS + r"""
(async () => {
  if (window.courseReady) await window.courseReady;  // the deck's own layout (continued slides) is done
  const math = await courseMath(document.querySelector('.reveal .slides'));
  const cfg = Reveal.getConfig();
  const slides = [];
  const tops = Reveal.getHorizontalSlides();
  const tick = () => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
  const visible = e => e.offsetParent !== null && e.getClientRects().length > 0 && e.textContent.trim() !== '';
  const px = e => parseFloat(getComputedStyle(e).fontSize);
  for (let h = 0; h < tops.length; h++) {
    const leaves = tops[h].classList.contains('stack') ? Array.from(tops[h].querySelectorAll(':scope > section')) : [tops[h]];
    for (let v = 0; v < leaves.length; v++) {
      Reveal.slide(h, v);
      await tick();
      const s = leaves[v];
      const heading = s.querySelector('h1, h2, h3, h4');
      const title = (heading ? heading.textContent : s.textContent).replace(/\s+/g, ' ').replace('¶', '').trim().slice(0, 70);
      const clipped = [];
      s.querySelectorAll('pre').forEach(p => {
        if (p.offsetParent !== null && p.scrollWidth > p.clientWidth + 1) {
          const line = p.textContent.split('\n').reduce((a, b) => b.length > a.length ? b : a, '');
          clipped.push(line.trim().slice(0, 80));
        }
      });
      const wide = [];
      const right = s.getBoundingClientRect().right + 1;
      s.querySelectorAll('img, svg, mjx-container, table').forEach(e => {
        if (e.offsetParent !== null && e.getBoundingClientRect().right > right) wide.push(e.tagName.toLowerCase());
      });
      const code = Array.from(s.querySelectorAll('.jp-InputArea pre, .jp-OutputArea-output pre, .jp-OutputArea-output td')).filter(visible);
      const body = Array.from(s.querySelectorAll('.jp-MarkdownOutput p, .jp-MarkdownOutput li, .jp-MarkdownOutput td, .jp-MarkdownOutput th, .course-widget-note')).filter(visible);
      const codeLines = Array.from(s.querySelectorAll('.jp-InputArea pre')).filter(visible)
          .flatMap(p => p.textContent.replace(/\n+$/, '').split('\n'));
      const figures = Array.from(s.querySelectorAll('.jp-OutputArea-output img')).filter(i => i.offsetParent !== null && i.naturalWidth > 0);
      slides.push({index: slides.length + 1, h: h, v: v, title: title,
                   overflow_px: Math.max(0, s.scrollHeight - s.clientHeight), clipped: clipped, too_wide: wide,
                   code_px: code.length ? Math.min(...code.map(px)) : null,
                   body_px: body.length ? Math.min(...body.map(px)) : null,
                   code_lines: codeLines.length,
                   asserts: codeLines.filter(l => /^\s*assert\b/.test(l)).map(l => l.trim().slice(0, 80)),
                   figure_scale: figures.length ? Math.min(...figures.map(i => i.getBoundingClientRect().width / Reveal.getScale() / i.naturalWidth)) : null,
                   figures: figures.length});
    }
  }
  Reveal.slide(0, 0);
  await tick();
  return JSON.stringify({kind: 'deck', width: cfg.width, height: cfg.height, scale: Reveal.getScale(),
                         navigation: cfg.navigationMode, total: Reveal.getTotalSlides(), math: math, slides: slides});
})()
"""

_PAGE_JS = _MATH_JS + r"""
(async () => {
  const main = document.querySelector('article, main, [role=main], body');
  const math = await courseMath(main);
  const images = Array.from(document.querySelectorAll('img')).map(i => ({src: i.getAttribute('src') || '',
      alt: (i.getAttribute('alt') || '').trim(), loaded: i.complete && i.naturalWidth > 0}));
  const links = Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'));
  const cut = [];
  document.querySelectorAll('pre, table').forEach(p => {
    if (p.offsetParent === null) return;
    const style = getComputedStyle(p);
    const scrolls = ['auto', 'scroll'].includes(style.overflowX) ||
        (p.parentElement && ['auto', 'scroll'].includes(getComputedStyle(p.parentElement).overflowX));
    if (p.scrollWidth > p.clientWidth + 1 && !scrolls) cut.push(p.textContent.trim().slice(0, 80));
    if (p.getBoundingClientRect().right > window.innerWidth + 1 && !scrolls) cut.push('[past the window] ' + p.textContent.trim().slice(0, 60));
  });
  const footer = document.querySelector('footer, .footer');
  return JSON.stringify({kind: 'page', title: document.title, math: math, images: images, links: links, cut: cut,
                         page_wider_than_window: document.documentElement.scrollWidth > window.innerWidth + 1,
                         footer: footer ? footer.textContent.replace(/\s+/g, ' ').trim() : '',
                         search: !!document.querySelector('form[action*="search"], input[type=search], #searchbox, .sidebar-search')});
})()
"""

_SEARCH_JS = r"""
(async () => {
  for (let i = 0; i < 100; i++) {
    const items = document.querySelectorAll('#search-results li, ul.search li');
    const status = document.querySelector('#search-results p.search-summary, .search-summary');
    if (items.length && Array.from(items).every(li => li.querySelector('p.context')) || (status && /did not match|found 0/i.test(status.textContent))) break;
    await new Promise(r => setTimeout(r, 200));
  }
  return JSON.stringify(Array.from(document.querySelectorAll('#search-results li, ul.search li')).map(li => ({
      href: (li.querySelector('a') || {}).getAttribute ? li.querySelector('a').getAttribute('href') : '',
      snippet: (li.querySelector('p.context') || {textContent: ''}).textContent})));
})()
"""

BOILERPLATE_ALT = re.compile(r"^(figure drawn by the code|no description has been provided|figure of the section|image)", re.I)


def find_chromium() -> str | None:
    """The path of a Chromium (or Chrome) executable, or None."""
    for name in (os.environ.get("COURSE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome",
                 "google-chrome-stable"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class Browser:
    """One headless Chromium with one page, driven over the DevTools protocol. Use as a context manager."""

    def __init__(self, executable: str | None = None, timeout: float = 60.0):
        self.executable = executable or find_chromium()
        if self.executable is None:
            raise FileNotFoundError("no Chromium found: install it (Debian: apt-get install chromium) "
                                    "or set COURSE_CHROMIUM to its path.")
        self.timeout = timeout
        self.proc = None
        self.ws = None
        self._id = 0
        self.requests: list[str] = []

    def __enter__(self):
        import websocket  # websocket-client, installed with Jupyter

        self._profile = tempfile.mkdtemp(prefix="course_chromium_")
        args = [self.executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--remote-debugging-port=0", f"--user-data-dir={self._profile}", f"--window-size={WIDTH},{HEIGHT}",
                "--hide-scrollbars", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--mute-audio", "--allow-file-access-from-files",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "about:blank"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError(f"Chromium ({self.executable}) did not start within {self.timeout:g} s.")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        pages = []
        while not pages:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            if not pages:
                time.sleep(0.1)
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=self.timeout,
                                              suppress_origin=True)
        self.call("Network.enable")
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False)
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:
                pass
            self.ws = None
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
            self.proc = None
        shutil.rmtree(getattr(self, "_profile", ""), ignore_errors=True)

    def _handle(self, msg):
        if msg.get("method") == "Network.requestWillBeSent":
            self.requests.append(msg["params"]["request"]["url"])

    def call(self, method, **params):
        self._id += 1
        my_id = self._id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            self._handle(msg)
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error'].get('message')}")
                return msg.get("result", {})
        raise TimeoutError(f"Chromium did not answer {method} within {self.timeout:g} s.")

    def open(self, url: str, settle: float = 0.3):
        """Load ``url`` and wait for its load event (and ``settle`` seconds more)."""
        self.requests = []
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            self._handle(msg)
            if msg.get("method") == "Page.loadEventFired":
                break
        else:
            raise TimeoutError(f"{url} did not finish loading within {self.timeout:g} s.")
        time.sleep(settle)

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(f"the page's script failed: {details.get('exception', {}).get('description') or details.get('text')}")
        return result["result"].get("value")

    def set_viewport(self, width: int, height: int):
        """Emulate a screen of ``width`` x ``height`` CSS px (the page's resize handlers run)."""
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def screenshot(self, path: str | Path):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        Path(path).write_bytes(base64.b64decode(data))

    def remote_requests(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(LOCAL_SCHEMES)]


def _url(path: str | Path) -> str:
    return Path(path).resolve().as_uri()


def slide_problems(s: dict) -> list[str]:
    """Why a slide (one entry of a deck report) fails the check; empty when it passes."""
    why = []
    if s["overflow_px"]:
        why.append(f"{s['overflow_px']} px too tall")
    if s["clipped"]:
        why.append(f"{len(s['clipped'])} clipped block(s), e.g. {s['clipped'][0]!r}")
    if s["too_wide"]:
        why.append("too wide: " + ", ".join(sorted(set(s["too_wide"]))))
    if s.get("code_px") is not None and s["code_px"] < MIN_CODE_PX - 0.01:
        why.append(f"code at {s['code_px']:g} px (< {MIN_CODE_PX})")
    if s.get("body_px") is not None and s["body_px"] < MIN_BODY_PX - 0.01:
        why.append(f"text at {s['body_px']:g} px (< {MIN_BODY_PX})")
    if s.get("asserts"):
        why.append(f"{len(s['asserts'])} assert line(s) shown, e.g. {s['asserts'][0]!r}")
    if s.get("figure_scale") is not None and s["figure_scale"] < MIN_FIGURE_SCALE:
        why.append(f"a figure drawn at {s['figure_scale']:.2f} of its size (labels under 12 px)")
    return why


def press_through(browser: Browser, total: int, key: str = "ArrowRight", code: int = 39) -> list[list[int]]:
    """From the first slide, press ``key`` (real key events) until the last slide (fragments take a press
    each; at most 3 x ``total`` presses); the (h, v) of each slide reached, in order."""
    browser.evaluate("Reveal.slide(0, 0); document.body.focus(); 1")
    seen = [browser.evaluate("JSON.stringify(Reveal.getIndices())")]
    for _ in range(3 * total):
        if browser.evaluate("Reveal.isLastSlide() && !Reveal.availableFragments().next"):
            break
        for kind in ("keyDown", "keyUp"):
            browser.call("Input.dispatchKeyEvent", type=kind, key=key, code=key if key != " " else "Space",
                         windowsVirtualKeyCode=code, nativeVirtualKeyCode=code)
        seen.append(browser.evaluate("JSON.stringify(Reveal.getIndices())"))
    visited = []
    for item in seen:
        ix = json.loads(item)
        pos = [ix["h"], ix.get("v") or 0]
        if pos not in visited:
            visited.append(pos)
    return visited


def check_deck(browser: Browser, deck: str | Path, screenshots: str | Path | None = None,
               viewports=VIEWPORTS) -> dict:
    """Open a deck at each viewport (1280 x 720 and 1024 x 768) and measure every slide: overflow (px
    beyond the slide), clipped code lines, elements wider than the slide, type sizes (code, body text),
    asserts shown, figures drawn too small; math (rendered, errors, raw TeX), the requests that left
    the machine, and whether the Right arrow visits every slide and subslide (at the first viewport).

    The report is that of the first viewport, with ``failed_slides`` from every viewport (each with
    its ``viewport`` and ``why``) and ``viewports`` holding each viewport's report.
    """
    report, failed, per = None, [], {}
    for width, height in viewports:
        browser.set_viewport(width, height)
        browser.open(_url(deck))
        one = json.loads(browser.evaluate(_DECK_JS))
        one["remote_requests"] = browser.remote_requests()
        label = f"{width}x{height}"
        per[label] = one
        for s in one["slides"]:
            why = slide_problems(s)
            if why:
                failed.append({**s, "viewport": label, "why": why})
        if report is None:
            report = one
            visited = press_through(browser, one["total"])
            report["right_arrow_visits"] = len(visited)
            if screenshots is not None:
                Path(screenshots).mkdir(parents=True, exist_ok=True)
        if screenshots is not None:
            for s in [f for f in failed if f["viewport"] == label]:
                browser.evaluate(f"Reveal.slide({s['h']}, {s['v']}); 1")
                time.sleep(0.2)
                browser.screenshot(Path(screenshots) / f"{Path(deck).name.split('.')[0]}_{label}_slide{s['index']:02d}.png")
    browser.set_viewport(*viewports[0])
    report["failed_slides"] = failed
    report["viewports"] = per
    report["linear"] = report["right_arrow_visits"] == len(report["slides"])
    return report


def screenshot_slides(browser: Browser, deck: str | Path, out: str | Path, which=(), viewport=VIEWPORTS[0]) -> list[Path]:
    """PNG screenshots of the slides numbered in ``which`` (1-based, as the deck counts them; all when empty)."""
    browser.set_viewport(*viewport)
    browser.open(_url(deck))
    browser.evaluate("MathJax && MathJax.startup ? MathJax.startup.promise.then(() => 1) : 1")
    pairs = json.loads(browser.evaluate("JSON.stringify(Reveal.getSlides().map(s => Reveal.getIndices(s)))"))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shots = []
    for n, ix in enumerate(pairs, 1):
        if which and n not in which:
            continue
        browser.evaluate(f"Reveal.slide({ix['h']}, {ix.get('v') or 0}); 1")
        time.sleep(0.3)
        path = out / f"{Path(deck).name.split('.')[0]}_{viewport[0]}x{viewport[1]}_slide{n:02d}.png"
        browser.screenshot(path)
        shots.append(path)
    return shots


def check_page(browser: Browser, page: str | Path, viewport=VIEWPORTS[0]) -> dict:
    """Open a site page: math, images (alt text, loaded), links, code cut at the right edge (neither
    fitting nor scrolling), the footer, the search box, remote requests. ``problems`` lists what fails."""
    browser.set_viewport(*viewport)
    browser.open(_url(page))
    report = json.loads(browser.evaluate(_PAGE_JS))
    report["remote_requests"] = browser.remote_requests()
    problems = [f"remote request: {u}" for u in report["remote_requests"][:3]]
    problems += [f"math error: {e}" for e in report["math"]["errors"][:3]] + [f"raw TeX: {r}" for r in report["math"]["raw"][:3]]
    figures = [i for i in report["images"] if "_images/" in i["src"]]
    problems += [f"figure without a real alt text: {i['src']} ({i['alt']!r})" for i in figures
                 if not i["alt"] or BOILERPLATE_ALT.match(i["alt"]) or i["alt"].endswith(".png")]
    problems += [f"figure not loaded: {i['src']}" for i in figures if not i["loaded"]]
    problems += [f"code cut at the right edge: {c!r}" for c in report["cut"][:3]]
    if report["page_wider_than_window"]:
        problems.append("the page is wider than the window")
    if not re.search(r"©\s*\d{4},?\s+\w", report["footer"]):
        problems.append(f"footer without a name: {report['footer'][:80]!r}")
    report["problems"] = problems
    browser.set_viewport(*VIEWPORTS[0])
    return report


def search_snippets(browser: Browser, search_page: str | Path, query: str) -> list[dict]:
    """Search the site for ``query`` (its search page, as a reader does) and return the results' snippets."""
    browser.open(_url(search_page) + "?q=" + urllib.request.quote(query), settle=0.5)
    return json.loads(browser.evaluate(_SEARCH_JS))


def describe_deck(report: dict, name: str = "") -> str:
    lines = [f"{name}: {len(report['slides'])} slides, {len({(s['h'], s['v']) for s in report['failed_slides']})} fail "
             f"the check; Right arrow visits {report.get('right_arrow_visits', '?')}; "
             f"math: {report['math']['rendered']} rendered, {len(report['math']['errors'])} errors, "
             f"{len(report['math']['raw'])} raw; {len(report['remote_requests'])} remote requests"]
    for s in report["failed_slides"]:
        lines.append(f"  {s.get('viewport', '')} slide {s['index']} ({s['title']!r}): " + "; ".join(s.get("why") or slide_problems(s)))
    for raw in report["math"]["raw"][:5]:
        lines.append(f"  raw TeX: {raw!r}")
    for err in report["math"]["errors"][:5]:
        lines.append(f"  math error: {err!r}")
    for url in report["remote_requests"][:5]:
        lines.append(f"  remote request: {url}")
    return "\n".join(lines)


def deck_summary(report: dict) -> dict:
    """Counts over a deck at its first viewport: slides, code lines, slides with >= 8 code lines and no figure."""
    slides = report["slides"]
    return {"slides": len(slides), "code_lines": sum(s["code_lines"] for s in slides),
            "code_heavy_slides": sum(1 for s in slides if s["code_lines"] >= 8 and not s["figures"]),
            "min_code_px": min((s["code_px"] for s in slides if s["code_px"] is not None), default=None),
            "min_body_px": min((s["body_px"] for s in slides if s["body_px"] is not None), default=None)}


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m course_lib.tooling.browser", description=__doc__.splitlines()[0])
    p.add_argument("decks", nargs="+", metavar="DECK.html")
    p.add_argument("--screenshots", metavar="DIR", help="save a PNG of each slide that does not fit")
    p.add_argument("--json", action="store_true", help="print the full reports as JSON")
    args = p.parse_args(argv)
    bad = 0
    with Browser() as browser:
        for deck in args.decks:
            report = check_deck(browser, deck, args.screenshots)
            print(json.dumps(report, indent=1) if args.json else describe_deck(report, Path(deck).name))
            bad += bool(report["failed_slides"] or report["remote_requests"] or report["math"]["errors"]
                        or report["math"]["raw"] or not report["linear"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
