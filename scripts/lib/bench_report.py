#!/usr/bin/env python3
"""Turns hbone-bench's JSON-lines figures into <out>.json, a Markdown table <out>.md and an SVG
chart <out>.svg of each figure against its same-run baseline.
   bench_report.py FIGURES.jsonl OUT_PREFIX [--title T]"""
import json, platform, subprocess, sys
from xml.sax.saxutils import escape

def meta(title):
    def run(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
        except Exception:
            return None
    return {"title": title, "cores": run("nproc"), "openssl": run("openssl", "version"),
            "commit": run("git", "rev-parse", "HEAD"), "kernel": platform.release()}

def fmt(v):
    if v is None:
        return ""
    return "%.0f" % v if abs(v) >= 100 else "%.3g" % v

def markdown(figures, m):
    lines = ["# " + m["title"], "",
             "| benchmark | figure | value | baseline (same run) | ratio | target |",
             "|---|---|---|---|---|---|"]
    for f in figures:
        base = "%s %s" % (fmt(f.get("baseline")), f.get("baselineName")) if f.get("baseline") is not None else ""
        ratio = "%.2f×" % f["ratio"] if f.get("ratio") is not None else ""
        target = ""
        if f.get("target"):
            target = "%s %s" % (f["target"], "met" if f.get("met") else "**not met**")
        lines.append("| %s | %s | %s %s | %s | %s | %s |" % (f["benchmark"], f["name"], fmt(f["value"]), f["unit"], base, ratio, target))
    lines += ["", "Commands:", ""]
    seen = []
    for f in figures:
        if f["command"] not in seen:
            seen.append(f["command"])
            lines.append("    " + f["command"])
    return "\n".join(lines) + "\n"

def svg(figures, m):
    """Horizontal bars, one per figure with a baseline: the ratio to that baseline, 1× marked.
    Green where the figure meets its goal, red where it misses it, blue where it has none."""
    rows = [f for f in figures if f.get("ratio") is not None]
    width, left, right, bar, gap, top = 980, 430, 90, 18, 8, 56
    height = top + len(rows) * (bar + gap) + 40
    top_ratio = max([1.0] + [f["ratio"] for f in rows]) * 1.08
    scale = (width - left - right) / top_ratio
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' % (width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="10" y="22" font-size="15" font-weight="bold">%s</text>' % escape(m["title"]),
           '<text x="10" y="42" fill="#555">value ÷ same-run baseline; green: goal met, red: goal missed, blue: no goal</text>']
    for i, f in enumerate(rows):
        y = top + i * (bar + gap)
        colour = "#4a78b0" if f.get("met") is None else "#3a8d4f" if f["met"] else "#c0504d"
        label = "%s: %s" % (f["benchmark"], f["name"])
        if len(label) > 68:
            label = label[:66] + "…"
        out.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (left - 8, y + bar - 5, escape(label)))
        out.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>' % (left, y, f["ratio"] * scale, bar, colour))
        out.append('<text x="%.1f" y="%d">%.2f×</text>' % (left + f["ratio"] * scale + 4, y + bar - 5, f["ratio"]))
    x1 = left + scale
    out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black" stroke-dasharray="4 3"/>' % (x1, top - 4, x1, height - 30))
    out.append('<text x="%.1f" y="%d" text-anchor="middle">1× baseline</text>' % (x1, height - 14))
    out.append("</svg>")
    return "\n".join(out) + "\n"

def main():
    src, prefix = sys.argv[1], sys.argv[2]
    title = sys.argv[sys.argv.index("--title") + 1] if "--title" in sys.argv else "hbone benchmarks"
    figures = [json.loads(l) for l in open(src) if l.strip()]
    m = meta(title)
    with open(prefix + ".json", "w") as f:
        json.dump({"meta": m, "figures": figures}, f, indent=2, ensure_ascii=False)
    with open(prefix + ".md", "w") as f:
        f.write(markdown(figures, m))
    with open(prefix + ".svg", "w") as f:
        f.write(svg(figures, m))

if __name__ == "__main__":
    main()
