#!/usr/bin/env python3
"""Turns hbone-bench's JSON-lines figures into <out>.json, a Markdown table <out>.md and an SVG
chart <out>.svg of each figure against its same-run baseline.
   bench_report.py FIGURES.jsonl OUT_PREFIX [--title T]"""
import json, math, platform, subprocess, sys
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
    """One bar per figure with a baseline: its ratio to that baseline on a log scale, growing from
    the 1× line (right: more than the baseline, left: less). Green where the figure meets its goal,
    red where it misses it, blue where it has none."""
    rows = [f for f in figures if f.get("ratio")]
    width, left, right, bar, gap, top = 1000, 430, 60, 18, 8, 60
    height = top + len(rows) * (bar + gap) + 44
    span = max([1.0] + [abs(math.log2(f["ratio"])) for f in rows]) * 1.1
    unit = (width - left - right) / (2 * span)
    centre = left + span * unit
    x = lambda r: centre + math.log2(r) * unit
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' % (width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="10" y="22" font-size="15" font-weight="bold">%s</text>' % escape(m["title"]),
           '<text x="10" y="42" fill="#555">value ÷ same-run baseline, log scale; green: goal met, red: goal missed, blue: no goal</text>']
    for i, f in enumerate(rows):
        y = top + i * (bar + gap)
        colour = "#4a78b0" if f.get("met") is None else "#3a8d4f" if f["met"] else "#c0504d"
        label = "%s: %s" % (f["benchmark"], f["name"])
        if len(label) > 62:
            label = label[:60] + "…"
        out.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (left - 8, y + bar - 5, escape(label)))
        x0, x1 = sorted((centre, x(f["ratio"])))
        out.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"/>' % (x0, y, max(1.0, x1 - x0), bar, colour))
        tx = x1 + 4 if f["ratio"] >= 1 else x0 - 4
        anchor = "start" if f["ratio"] >= 1 else "end"
        out.append('<text x="%.1f" y="%d" text-anchor="%s">%.2f×</text>' % (tx, y + bar - 5, anchor, f["ratio"]))
    bottom = height - 34
    for k in range(-int(span), int(span) + 1):
        gx = centre + k * unit
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" %s/>' % (
            gx, top - 4, gx, bottom, "black" if k == 0 else "#ddd", 'stroke-dasharray="4 3"' if k == 0 else ""))
        out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s×</text>' % (gx, bottom + 14, ("%d" % 2 ** k if k >= 0 else "1/%d" % 2 ** -k)))
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
