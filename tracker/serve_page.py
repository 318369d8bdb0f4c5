"""The page `--serve` answers GET / with: one panel per source with the annotated video (its
MJPEG stream in an <img>), FPS, latency and a table of the current tracks (from /events).

The page is this string, made once per server: nothing is read from the disk. It reconnects by
itself: EventSource retries after a dropped connection (the `retry:` the server sends), and when
it is back the video is reopened too, so a restarted stream or a reloaded page goes on.
"""

from __future__ import annotations

import html
import json

from tracker.tracking import TrackState

__all__ = ["page_html"]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pose tracker: live</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 12px; background: #15171a; color: #e8e8e8; }
section { display: inline-block; vertical-align: top; margin: 0 16px 16px 0; }
h2 { font-size: 15px; margin: 4px 0; }
img { display: block; max-width: 100%; background: #000; min-width: 320px; min-height: 180px; }
.stats { margin: 6px 0; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #333; padding: 2px 10px; text-align: right; }
.down { color: #f3a35c; }
</style></head>
<body>
SECTIONS
<script>
const STATES = STATE_NAMES;
const token = new URLSearchParams(location.search).get("token");
function route(path, source) {
  const query = new URLSearchParams({source: source});
  if (token) query.set("token", token);
  return path + "?" + query;
}
for (const panel of document.querySelectorAll("section[data-source]")) {
  const source = panel.dataset.source;
  const video = panel.querySelector("img"), stats = panel.querySelector(".stats");
  const rows = panel.querySelector("tbody");
  const openVideo = () => { video.src = route("/stream.mjpg", source) + "&t=" + Date.now(); };
  const events = new EventSource(route("/events", source));
  let dropped = false;
  events.onopen = () => { if (dropped) openVideo(); dropped = false; };
  events.onerror = () => { dropped = true; stats.textContent = "reconnecting..."; stats.className = "stats down"; };
  events.addEventListener("stats", (event) => {
    const s = JSON.parse(event.data);
    stats.textContent = `frame ${s.frame}   ${s.fps.toFixed(1)} FPS   latency ${s.latency_ms.toFixed(0)} ms`;
    stats.className = "stats";
  });
  events.onmessage = (event) => {
    const record = JSON.parse(event.data);
    rows.replaceChildren(...record.tracks.map((track) => {
      const count = (state) => track.joint_states.filter((s) => s === state).length;
      const row = document.createElement("tr");
      for (const cell of [track.id, STATES[track.state] || track.state, count("observed"), count("predicted"),
                          count("hidden")]) {
        row.appendChild(document.createElement("td")).textContent = cell;
      }
      return row;
    }));
  };
  openVideo();
}
</script>
</body></html>
"""

_SECTION = """<section data-source="{index}">
<h2>{title}</h2>
<img alt="annotated video of {title}">
<div class="stats">waiting for frames...</div>
<table><thead><tr><th>id</th><th>state</th><th>observed</th><th>predicted</th><th>hidden</th></tr></thead>
<tbody></tbody></table>
</section>"""


def page_html(names: list[str]) -> bytes:
    """The page for sources named `names` (in --source order), as UTF-8."""
    sections = "\n".join(_SECTION.format(index=index, title=html.escape(f"{index}: {name}"))
                         for index, name in enumerate(names))
    states = json.dumps({int(state): state.name.lower() for state in TrackState})
    return _PAGE.replace("SECTIONS", sections).replace("STATE_NAMES", states).encode()
