"""The `--serve` page in a real headless browser (Debian's chromium, driven over the DevTools
protocol on a pipe): every source's video shows the clip and its track table is filled, also
after a reload. The screenshot is checked by its pixels; TRACKER_SCREENSHOT_TO=PATH also saves
it there (how README's demos/serve.png was made).

Waits end when the page reports what is awaited; HANG_GUARD_S only keeps a broken run from
hanging the suite.
"""

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from test_serve import HANG_GUARD_S, TOKEN, TrackerRun, mirrored

BROWSER = shutil.which("chromium")
VIEWPORT = (1360, 540)
# the page's state: per panel, the picture's size and on screen, and the table's rows
PANELS = """[...document.querySelectorAll("section[data-source]")].map((panel) => {
  const image = panel.querySelector("img"), box = image.getBoundingClientRect();
  return {size: [image.naturalWidth, image.naturalHeight], box: [box.x, box.y, box.width, box.height],
          src: image.src, stats: panel.querySelector(".stats").textContent,
          rows: [...panel.querySelectorAll("tbody tr")].map((row) => [...row.cells].map((cell) => cell.textContent))};
})"""


class Chromium:
    """chromium --headless with --remote-debugging-pipe: DevTools commands as NUL-terminated
    JSON, read by the browser on its fd 3 and answered on its fd 4."""

    def __init__(self, url: str, profile: Path):
        to_browser, self._commands = os.pipe()
        self._answers, from_browser = os.pipe()
        self.process = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{to_browser} 4>&{from_browser}', BROWSER, "--headless",
             "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--remote-debugging-pipe",
             f"--user-data-dir={profile}", url],
            pass_fds=(to_browser, from_browser), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        self._count, self._pending, self.session = 0, b"", None
        page = next(t for t in self.send("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self.session = self.send("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})["sessionId"]
        self.send("Emulation.setDeviceMetricsOverride", {"width": VIEWPORT[0], "height": VIEWPORT[1],
                                                         "deviceScaleFactor": 1, "mobile": False})

    def send(self, method: str, params: dict | None = None) -> dict:
        self._count += 1
        message = {"id": self._count, "method": method, "params": params or {}}
        if self.session is not None:
            message["sessionId"] = self.session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:   # events and other answers go by
            while b"\0" not in self._pending:
                chunk = os.read(self._answers, 1 << 20)
                assert chunk, "the browser went away"
                self._pending += chunk
            raw, self._pending = self._pending.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._count:
                assert "error" not in answer, answer["error"]
                return answer["result"]

    def evaluate(self, expression: str):
        return self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})["result"].get("value")

    def panels_once_shown(self, count: int, not_from: list[dict] | None = None) -> list[dict]:
        """PANELS once `count` panels each show a picture, frame numbers and at least one track
        (with `not_from`: from other video connections than those panels')."""
        deadline = time.monotonic() + HANG_GUARD_S
        while time.monotonic() < deadline:
            panels = self.evaluate(PANELS) or []
            if len(panels) == count and all(p["size"][0] > 0 and p["rows"] and p["stats"].startswith("frame")
                                            for p in panels):
                if not_from is None or all(p["src"] != old["src"] for p, old in zip(panels, not_from)):
                    return panels
            time.sleep(0.1)
        raise AssertionError(f"the page never showed its videos and tracks: {panels}")

    def close(self) -> None:
        self.session = None
        try:
            self.send("Browser.close")
            self.process.wait(HANG_GUARD_S)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            os.close(self._commands)
            os.close(self._answers)


@pytest.mark.slow
@pytest.mark.skipif(BROWSER is None, reason="no chromium (Debian's chromium package; .ci/run installs it)")
def test_the_page_shows_each_sources_video_and_tracks(tmp_path, short_clip):
    """Two looping sources with the bundled models: the browser shows both videos (640x360,
    the clip's pixels on screen) and both track tables (ids the run exported, known states,
    17 joints a row); so again after a reload, and after the run is restarted on its port."""
    mirror = mirrored(short_clip, tmp_path / "mirror.mp4")
    args = ["--source", str(short_clip), "--source", str(mirror), "--loop", "--bundled", "--export", "jsonl",
            "--no-save"]
    (tmp_path / "first").mkdir()
    run = TrackerRun(tmp_path / "first", *args, env={"TRACKER_SERVE_TOKEN": TOKEN}, token=TOKEN)
    browser, again = None, None
    try:
        run.frame(source=0), run.frame(source=1)
        browser = Chromium(f"{run.url}?token={TOKEN}", tmp_path / "profile")
        panels = browser.panels_once_shown(2)
        shot = base64.b64decode(browser.send("Page.captureScreenshot", {"format": "png"})["data"])
        browser.send("Page.reload")
        reloaded = browser.panels_once_shown(2)
        assert run.interrupt() == 130
        (tmp_path / "again").mkdir()
        again = TrackerRun(tmp_path / "again", *args, env={"TRACKER_SERVE_TOKEN": TOKEN}, token=TOKEN,
                           serve=run.url[len("http://"):-1])
        browser.panels_once_shown(2, not_from=reloaded)
    finally:
        if browser is not None:
            browser.close()
        run.interrupt()
        if again is not None:
            again.interrupt()
    (tmp_path / "serve.png").write_bytes(shot)
    if os.environ.get("TRACKER_SCREENSHOT_TO"):
        Path(os.environ["TRACKER_SCREENSHOT_TO"]).write_bytes(shot)

    screen = cv2.imdecode(np.frombuffer(shot, np.uint8), cv2.IMREAD_COLOR)
    clip = [cv2.VideoCapture(str(path)).read()[1] for path in (short_clip, mirror)]
    for panel, first, name in zip(panels, clip, ("short", "mirror")):
        assert panel["size"] == [first.shape[1], first.shape[0]]
        x, y, w, h = (round(v) for v in panel["box"])
        shown = screen[y:y + h, x:x + w].astype(np.float32)
        expected = cv2.resize(first, (w, h)).astype(np.float32)
        # the clip's picture (another frame of it, skeletons drawn): far nearer to it than black is
        assert np.abs(shown - expected).mean() < 0.3 * np.abs(expected).mean()
        exported = {t["id"] for record in run.jsonl(name) for t in record["tracks"]}
        for track_id, state, *joints in panel["rows"]:
            assert int(track_id) in exported and state in ("tentative", "tracked", "lost")
            assert sum(int(n) for n in joints) == 17
    assert all(p["rows"] for p in reloaded)
