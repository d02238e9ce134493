"""Check the built pages as a reader sees them: every formula typeset, nothing wider than its column.

    python _ext/check_pages.py _build/html [PAGE ...] [--screenshots DIR] [--known FILE]

Serves the built book from 127.0.0.1 and opens each page (every `*.html` outside `_static/`,
`_sources/` and `_images/`, or only the PAGEs named, relative to the build folder; a page that only
redirects is skipped) in headless Chromium with a 1280 px wide window, then checks:

* maths: MathJax finishes; every formula Sphinx wrote (`span.math`, `div.math`) is typeset and
  drawn, without a TeX error or an undefined macro, and an inline formula sits on the baseline of
  its line; no raw `\\(`, `\\)`, `\\[`, `\\]` or `$$` is left in the visible text (code boxes and
  inline code excluded);
* widths: no table, code box, cell output, figure, image or formula sticks out of the article
  column (`.bd-article`) or needs a horizontal scroll bar, and the page does not scroll sideways;
* offline: the page asks for nothing but the local server (no CDN), every file it asks for
  exists, and no script throws.

Prints a line per page (formulas typeset, failures) and each failure with the element, where it is
(the section, or the notebook cell and the first line of its code) and its width; exits 1 when
anything fails. `--known FILE` lists failures owned elsewhere (lines 'PAGE | piece of the
failure's text'): printed as known, they do not fail the check. `--screenshots DIR` saves a
1280 x 900 picture of each page, scrolled to its first formula (DIR/<page>.png).

Needs only Python's standard library and Chromium (`chromium` on the PATH, $CHROMIUM, or
--chromium): it drives Chromium over the DevTools protocol on a pipe (--remote-debugging-pipe),
so there is no driver to install and no debugging port to open. Not part of the test suite: run
it after a build (`make check-pages`).
"""
import argparse
import base64
import fcntl
import functools
import http.server
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

WIDTH, HEIGHT = 1280, 900
# A page that only sends the reader on (Jupyter Book's index.html): checked where it points.
REDIRECT = re.compile(r'<meta http-equiv="refresh" content="\d+;\s*url=([^"]+)"', re.IGNORECASE)

# Flags that keep Chromium quiet on a closed network (no update, sync, safe-browsing or QUIC
# traffic), and headless without a GPU or a sandbox (CI runs as root).
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
    f"--window-size={WIDTH},{HEIGHT}", "--remote-debugging-pipe",
]

# Runs in the page once it has loaded: waits for MathJax (2 or 3) and the fonts, then returns
# what the checks need as JSON.
PAGE_SCRIPT = r"""
(async (timeoutMs) => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const deadline = Date.now() + timeoutMs;
  const inMathJaxOutput = (el) =>
    el.parentElement && el.parentElement.closest(".MathJax, .MathJax_Display, .MathJax_SVG, mjx-container");
  const mathEls = [...document.querySelectorAll("span.math, div.math")].filter((el) => !inMathJaxOutput(el));
  const out = {formulas: mathEls.length, typeset: 0, mathjax: null, finished: true, math: [], widths: [], text: []};

  // 1. MathJax: loaded and finished with the page (pages without formulas load none).
  if (mathEls.length) {
    while (!(window.MathJax && (MathJax.Hub || (MathJax.startup && MathJax.startup.promise)))
           && Date.now() < deadline) await sleep(100);
    if (window.MathJax && MathJax.Hub && MathJax.Hub.Register) {
      out.mathjax = "MathJax " + MathJax.version;
      out.finished = await Promise.race([
        // (the hook returns nothing: a returned callback would hold up the startup it waits for)
        new Promise((r) => MathJax.Hub.Register.StartupHook("End", () => { MathJax.Hub.Queue(() => r(true)); })),
        sleep(Math.max(0, deadline - Date.now())).then(() => false)]);
    } else if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
      out.mathjax = "MathJax " + MathJax.version;
      out.finished = await Promise.race([MathJax.startup.promise.then(() => true),
                                         sleep(Math.max(0, deadline - Date.now())).then(() => false)]);
    } else {
      out.mathjax = "not loaded";
    }
  }
  if (document.fonts) await Promise.race([document.fonts.ready, sleep(5000)]);

  // 2. Each formula: typeset (MathJax 2: a jax and its drawn frame; MathJax 3: mjx-container),
  //    without a TeX error or an undefined macro (drawn red by noUndefined).
  for (const el of mathEls) {
    let ok = false, why = "not typeset";
    const script = el.querySelector('script[type^="math/tex"]');
    if (script && window.MathJax && MathJax.Hub) {
      const jax = MathJax.Hub.getJaxFor(script);
      const frame = jax && document.getElementById(jax.inputID + "-Frame");
      if (!jax) why = "no MathJax element";
      else if (!frame || frame.getBoundingClientRect().width <= 0) why = "typeset but not drawn";
      else {
        let mml = "";
        try { mml = jax.root.toMathML(""); } catch (e) { mml = ""; }
        if (jax.texError || /<merror/.test(mml)) why = "TeX error";
        else if (/mathcolor="red"/.test(mml)) why = "undefined macro (drawn red)";
        else ok = true;
      }
    } else {
      const c = el.querySelector("mjx-container");
      if (c) {
        if (c.querySelector("mjx-merror, [data-mjx-error]")) why = "TeX error";
        else ok = true;
      }
    }
    if (ok && el.tagName === "SPAN") {
      // an inline formula sits on the baseline of its line (MathJax 2: the baseline its depth strut
      // gives, against an empty inline block put in the formula's unbreakable <nobr>)
      const nobr = el.querySelector(".MathJax > nobr");
      const strut = nobr && [...nobr.querySelectorAll("span")].reverse().find((s) => s.style.verticalAlign);
      if (strut) {
        const mark = document.createElement("span");
        mark.style.cssText = "display: inline-block; width: 0; height: 0;";
        nobr.prepend(mark);
        const lineBaseline = mark.getBoundingClientRect().bottom;
        mark.remove();
        const own = strut.getBoundingClientRect().bottom + parseFloat(getComputedStyle(strut).verticalAlign);
        const off = Math.round((lineBaseline - own) * 10) / 10;
        if (Math.abs(off) > 1) {
          const where = `${Math.abs(off)} px ${off > 0 ? "above" : "below"}`;
          out.math.push({why: `typeset, but drawn ${where} the baseline of its line`, tex: script.textContent.trim()});
        }
      }
    }
    if (ok) out.typeset += 1;
    else out.math.push({why, tex: (script ? script.textContent : el.textContent).trim().slice(0, 120)});
  }

  // 3. Widths, against the article column's content box.
  const col = document.querySelector(".bd-article") || document.querySelector("#main-content")
              || document.body;
  const cs = getComputedStyle(col), cr = col.getBoundingClientRect();
  const colLeft = cr.left + parseFloat(cs.paddingLeft), colRight = cr.right - parseFloat(cs.paddingRight);
  out.column = Math.round(colRight - colLeft);
  const describe = (el) => {
    let d = el.tagName.toLowerCase();
    if (el.id) d += "#" + el.id;
    const cls = [...el.classList].filter((c) => !/^(docutils|container|notranslate)$/.test(c));
    if (cls.length) d += "." + cls.join(".");
    return d;
  };
  const context = (el) => {
    const ctx = {};
    const cell = el.closest("div.cell");
    if (cell) {
      ctx.cell = [...document.querySelectorAll("div.cell")].indexOf(cell) + 1;
      const src = cell.querySelector(".cell_input pre");
      if (src) ctx.cell_source = src.textContent.replace(/\s+$/, "");
      ctx.part = el.closest(".cell_output") ? "output" : el.closest(".cell_input") ? "code" : "cell";
    }
    const sec = el.closest("section[id]");
    if (sec) ctx.section = sec.id;
    let text = (el.tagName === "IMG" ? el.getAttribute("src") || "" : el.innerText || el.textContent || "").trim();
    if (el.tagName === "PRE") {
      const longest = text.split("\n").reduce((a, b) => (b.length > a.length ? b : a), "");
      ctx.longest_line = longest;
      ctx.longest_chars = longest.length;
    }
    ctx.text = text.slice(0, 100).replace(/\s+/g, " ");
    return ctx;
  };
  const SELECTOR = [
    "table", ".pst-scrollable-table-container", ".table-wrapper", "div.highlight", "div.highlight pre",
    "div.cell_output", "div.cell_output .output", "div.cell_output pre", "figure", "img", "svg",
    "video", "iframe", "div.math", "span.math", ".MathJax_Display", "mjx-container[display]"].join(", ");
  const reported = [];
  for (const el of document.querySelectorAll(SELECTOR)) {
    if (reported.some((r) => r.contains(el))) continue;
    // parts of a formula's drawing, and what lies outside the article column by design
    if (inMathJaxOutput(el) && !el.matches(".MathJax_Display, mjx-container")) continue;
    if (el.closest(".bd-sidebar-primary, .bd-sidebar-secondary, header, footer, .margin, .sidebar, aside")) continue;
    if (!col.contains(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;          // hidden (a folded cell, a closed toggle)
    const ox = getComputedStyle(el).overflowX;
    const scrolls = (ox === "auto" || ox === "scroll") && el.scrollWidth > el.clientWidth + 1;
    const sticksOut = r.right > colRight + 1 || r.left < colLeft - 1;
    const by = Math.round(Math.max(r.right - colRight, colLeft - r.left));
    if (!scrolls && !sticksOut) continue;
    reported.push(el);
    out.widths.push(Object.assign({
      element: describe(el), width: Math.round(r.width), content_width: el.scrollWidth,
      box_width: el.clientWidth, column: out.column,
      how: scrolls ? `needs a scroll bar: content ${el.scrollWidth} px in a ${el.clientWidth} px box`
                   : `sticks out of the ${out.column} px column by ${by} px`,
    }, context(el)));
  }
  const pageWidth = document.documentElement.scrollWidth;
  if (pageWidth > window.innerWidth + 1)
    out.widths.push({element: "page", width: pageWidth, column: out.column,
                     how: `the page scrolls sideways: ${pageWidth} px in a ${window.innerWidth} px window`});

  // 4. Raw TeX delimiters in the visible text, code boxes and inline code hidden.
  const style = document.createElement("style");
  style.textContent = "pre, code, div.highlight, kbd, samp, script { display: none !important; }";
  document.head.appendChild(style);
  const visible = document.body.innerText;
  style.remove();
  for (const delim of ["\\(", "\\)", "\\[", "\\]", "$$"]) {
    let i = visible.indexOf(delim);
    while (i >= 0 && out.text.length < 20) {
      out.text.push({delimiter: delim, context: visible.slice(Math.max(0, i - 40), i + 40).replace(/\s+/g, " ")});
      i = visible.indexOf(delim, i + delim.length);
    }
  }
  // scroll the first formula to the top, for the screenshot
  const first = mathEls.find((el) => el.tagName === "DIV") || mathEls[0];
  if (first) first.scrollIntoView({block: "start"}); else window.scrollTo(0, 0);
  await sleep(200);
  return JSON.stringify(out);
})
"""


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (messages end with a NUL)."""

    def __init__(self, executable, profile):
        to_chromium, from_chromium = os.pipe(), os.pipe()
        # Chromium reads commands on its fd 3 and answers on its fd 4. Copies of the pipe ends
        # above fd 9 (closed on exec) are moved there, so that no move overwrites another.
        read_end = fcntl.fcntl(to_chromium[0], fcntl.F_DUPFD_CLOEXEC, 10)
        write_end = fcntl.fcntl(from_chromium[1], fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_chromium[0])
        os.close(from_chromium[1])
        self._write_fd, self._read_fd = to_chromium[1], from_chromium[0]
        cmd = [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"]
        self.pid = os.posix_spawn(executable, cmd, os.environ, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),     # its dbus complaints
            (os.POSIX_SPAWN_DUP2, read_end, 3),
            (os.POSIX_SPAWN_DUP2, write_end, 4),
        ])
        os.close(read_end)
        os.close(write_end)
        self._next_id = 0
        self._lock = threading.Condition()
        self._replies = {}
        self._events = []
        self._closed = False
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        buffer = b""
        while True:
            try:
                chunk = os.read(self._read_fd, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._lock:
                    self._closed = True
                    self._lock.notify_all()
                return
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            with self._lock:
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        self._replies[message["id"]] = message
                    else:
                        self._events.append(message)
                self._lock.notify_all()

    def send(self, method, params=None, session=None, timeout=60):
        with self._lock:
            self._next_id += 1
            call_id = self._next_id
        message = {"id": call_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write_fd, json.dumps(message).encode() + b"\0")
        end = time.monotonic() + timeout
        with self._lock:
            while call_id not in self._replies:
                left = end - time.monotonic()
                if self._closed or left <= 0:
                    raise RuntimeError(f"Chromium did not answer {method}"
                                       + (" (it stopped)" if self._closed else f" in {timeout} s"))
                self._lock.wait(left)
            reply = self._replies.pop(call_id)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def wait_event(self, method, session, timeout):
        end = time.monotonic() + timeout
        with self._lock:
            while True:
                for i, event in enumerate(self._events):
                    if event["method"] == method and event.get("sessionId") == session:
                        return self._events.pop(i)
                left = end - time.monotonic()
                if self._closed or left <= 0:
                    return None
                self._lock.wait(left)

    def take_events(self):
        with self._lock:
            events, self._events = self._events, []
        return events

    def close(self):
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, OSError):
            pass
        for _ in range(100):                       # 10 s to close, then it is killed
            if os.waitpid(self.pid, os.WNOHANG)[0]:
                break
            time.sleep(0.1)
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        for fd in (self._write_fd, self._read_fd):
            try:
                os.close(fd)
            except OSError:
                pass


class _Handler(http.server.SimpleHTTPRequestHandler):
    missing = None      # set per server: the paths answered 404

    def log_message(self, format, *args):
        pass

    def send_error(self, code, message=None, explain=None):
        if code == 404 and not self.path.startswith("/favicon.ico"):
            self.missing.append(self.path)
        super().send_error(code, message, explain)


def serve(root):
    """Serves `root` on 127.0.0.1 (a free port); returns the server and its list of 404 paths."""
    missing = []
    handler = type("Handler", (_Handler,), {"missing": missing})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, missing


def find_pages(root, names):
    if names:
        return [root / n for n in names]
    return sorted(p for p in root.rglob("*.html")
                  if p.relative_to(root).parts[0] not in ("_static", "_sources", "_images"))


def check_page(browser, session, origin, rel, timeout, missing, screenshot):
    """Returns (summary dict, list of failure strings) for one page."""
    failures = []
    browser.take_events()
    del missing[:]
    browser.send("Page.navigate", {"url": f"{origin}/{rel}"}, session)
    if browser.wait_event("Page.loadEventFired", session, timeout) is None:
        failures.append(f"the page did not finish loading in {timeout} s")
    result = browser.send("Runtime.evaluate", {
        "expression": f"{PAGE_SCRIPT}({int(timeout * 1000)})", "awaitPromise": True,
        "returnByValue": True}, session, timeout=timeout + 30)
    if "exceptionDetails" in result:
        raise RuntimeError(f"{rel}: the check's script failed: {result['exceptionDetails']}")
    data = json.loads(result["result"]["value"])

    if not data["finished"]:
        failures.append(f"{data['mathjax']} did not finish typesetting in {timeout:.0f} s")
    if data["formulas"] and data["typeset"] != data["formulas"]:
        failures.append(f"{data['typeset']} of {data['formulas']} formulas typeset ({data['mathjax']})")
    for m in data["math"]:
        failures.append(f"formula {m['why']}: {m['tex'][:120]}")
    for t in data["text"]:
        failures.append(f"raw {t['delimiter']} in the visible text: ...{t['context']}...")
    for w in data["widths"]:
        where = ""
        if "cell" in w:
            first = w.get("cell_source", "").split("\n")[0][:70]
            where = f" in cell {w['cell']} ({w['part']}; its code starts {first!r})"
        elif "section" in w:
            where = f" in section #{w['section']}"
        line = f"too wide: {w['element']}{where}, {w['width']} px wide, {w['how']}"
        if "longest_chars" in w:
            line += f"; longest line {w['longest_chars']} characters: {w['longest_line'][:100]!r}"
        elif w.get("text"):
            line += f"; text {w['text'][:80]!r}"
        failures.append(line)

    for event in browser.take_events():
        method, params = event["method"], event.get("params", {})
        if event.get("sessionId") != session:
            continue
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith((origin + "/", "data:", "blob:", "about:")):
                failures.append(f"asks for an outside address (offline it fails): {url}")
        elif method == "Runtime.exceptionThrown":
            d = params["exceptionDetails"]
            text = d.get("exception", {}).get("description") or d.get("text", "")
            failures.append(f"JavaScript error: {text.splitlines()[0] if text else d}")
    for path in missing:
        failures.append(f"asks for a file the build lacks: {path}")

    if screenshot:
        shot = browser.send("Page.captureScreenshot", {"format": "png"}, session)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
    return data, failures


def read_known(path):
    """The known failures: (page, piece of text) pairs from lines 'PAGE | TEXT'."""
    known = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            page, sep, text = line.partition(" | ")
            if not sep or not text.strip():
                sys.exit(f"error: {path}:{n}: expected 'PAGE | piece of the failure's text', got {line!r}")
            known.append((page.strip(), text.strip()))
    return known


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build", nargs="?", default="_build/html", help="the built HTML (default _build/html)")
    parser.add_argument("pages", nargs="*", help="only these pages (paths relative to the build folder)")
    parser.add_argument("--screenshots", metavar="DIR", help="save a 1280 px screenshot of each page here")
    parser.add_argument("--known", metavar="FILE",
                        help="known failures, owned elsewhere: lines 'PAGE | piece of the failure's text' "
                             "(# comments); printed as known, they do not fail the check")
    parser.add_argument("--timeout", type=float, default=60, help="seconds per page (default 60)")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM"),
                        help="the Chromium executable (default: $CHROMIUM, else chromium on the PATH)")
    args = parser.parse_args(argv)

    root = Path(args.build).resolve()
    if not (root / "index.html").exists() and not args.pages:
        sys.exit(f"error: {root} holds no built book (no index.html); build it first (make book)")
    executable = args.chromium or next(
        (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    if not executable:
        sys.exit("error: no Chromium found; install it (Debian: apt-get install chromium) or pass --chromium")
    known = read_known(args.known) if args.known else []
    seen_known = set()
    shots = Path(args.screenshots) if args.screenshots else None
    if shots:
        shots.mkdir(parents=True, exist_ok=True)

    server, missing = serve(root)
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    profile = tempfile.mkdtemp(prefix="check-pages-")
    browser = Chromium(executable, profile)
    total_failures = 0
    pages_failed = pages_checked = 0
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Network"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Emulation.setDeviceMetricsOverride", {
            "width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False}, session)
        pages = find_pages(root, args.pages)
        print(f"checking {len(pages)} pages of {root} in {Path(executable).name} at {WIDTH} px")
        for page in pages:
            rel = page.relative_to(root).as_posix()
            refresh = REDIRECT.search(page.read_text(encoding="utf-8", errors="replace")[:2000])
            if refresh:
                print(f"{'skipped':>9}  {rel}: redirects to {refresh.group(1)}")
                continue
            shot = shots / (rel.replace("/", "_").removesuffix(".html") + ".png") if shots else None
            pages_checked += 1
            started = time.monotonic()
            data, failures = check_page(browser, session, origin, rel, args.timeout, missing, shot)
            maths = f"{data['typeset']}/{data['formulas']} formulas typeset" if data["formulas"] else "no formulas"
            matched = [next((k for k in known if k[0] == rel and k[1] in f), None) for f in failures]
            seen_known.update(k for k in matched if k)
            new = sum(k is None for k in matched)
            status = f"{new} FAILED" if new else "ok" if not failures else "known"
            print(f"{status:>9}  {rel}: {maths}, column {data['column']} px ({time.monotonic() - started:.1f} s)",
                  flush=True)
            for f, k in zip(failures, matched):
                print(f"           - {'(known) ' if k else ''}{f}")
            total_failures += new
            pages_failed += bool(new)
    finally:
        browser.close()
        server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)
    for page, text in known:
        if (page, text) not in seen_known and any(page == p.relative_to(root).as_posix() for p in pages):
            print(f"note: the known failure {page} | {text} no longer happens: remove it from {args.known}")
    print(f"{total_failures} failures" if total_failures else "all pages pass"
          + (f" ({len(seen_known)} known failures left to their owners, see {args.known})" if seen_known else ""))
    print(f"pages: {pages_checked - pages_failed} passed, {pages_failed} failed")
    return 1 if total_failures else 0


if __name__ == "__main__":
    sys.exit(main())
