"""plot.png: s1 latency, s2 fan-out, s3 memory per connection, s7 scale-out."""

from __future__ import annotations

from pathlib import Path


def write_plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    colors = {
        "chatapp": "#2a7ae2",
        "websockets": "#6c6c6c",
        "flask-socketio": "#d9822b",
        "node-ws": "#3c9a3c",
        "quart-naive": "#b04040",
    }

    def ok(d):
        return {k: v for k, v in (d or {}).items() if isinstance(v, dict) and "error" not in v}

    def short(names):  # variant labels on two lines
        return [n.replace(" [", "\n[").replace("chromium clients", "chromium")
                .replace("compression on", "deflate") for n in names]

    ax = axes[0][0]
    d = ok(res.get("s1"))
    if d:
        names = list(d)
        x = range(len(names))
        ax.bar(
            [i - 0.2 for i in x],
            [d[n]["latency_ms"]["p50"] or 0 for n in names],
            0.4,
            label="p50",
            color=[colors.get(n.split(" [")[0], "grey") for n in names],
            alpha=0.5,
        )
        ax.bar(
            [i + 0.2 for i in x],
            [d[n]["latency_ms"]["p99"] or 0 for n in names],
            0.4,
            label="p99",
            color=[colors.get(n.split(" [")[0], "grey") for n in names],
        )
        ax.set_xticks(list(x), short(names), rotation=15)
        ax.set_ylabel("ms")
        ax.set_yscale("log")
        ax.legend()
    ax.set_title("s1 end-to-end latency (light p50, dark p99; log scale)")

    ax = axes[0][1]
    d = ok(res.get("s2"))
    if d:
        names = list(d)
        x = range(len(names))
        ax.bar(
            [i - 0.2 for i in x],
            [d[n]["deliveries_per_s"] for n in names],
            0.4,
            color=[colors.get(n.split(" [")[0], "grey") for n in names],
            alpha=0.5,
            label="deliveries/s",
        )
        ax.bar(
            [i + 0.2 for i in x],
            [d[n]["deliveries_per_cpu_s"] or 0 for n in names],
            0.4,
            color=[colors.get(n.split(" [")[0], "grey") for n in names],
            label="per server-CPU-s",
        )
        ax.set_xticks(list(x), short(names), rotation=15)
        ax.legend()
    ax.set_title("s2 fan-out (light: deliveries/s, dark: per server-CPU-second)")

    ax = axes[1][0]
    d = ok(res.get("s3"))
    if d:
        names = list(d)
        sizes = sorted({int(k) for v in d.values() for k in v})
        w = 0.8 / max(1, len(sizes))
        for j, n in enumerate(sizes):
            ax.bar(
                [i + (j - (len(sizes) - 1) / 2) * w for i in range(len(names))],
                [d[t].get(str(n), {}).get("kb_per_conn", 0) for t in names],
                w,
                label=f"{n:,} conns",
                alpha=0.5 + 0.5 * j / max(1, len(sizes) - 1),
            )
        ax.axhline(25, color="red", ls="--", lw=1, label="target 25 KB")
        ax.set_xticks(range(len(names)), short(names), rotation=15)
        ax.set_ylabel("KB per idle connection")
        ax.legend()
    ax.set_title("s3 memory per idle connection")

    ax = axes[1][1]
    d = ok(next(iter((res.get("s7") or {}).values()), None))
    if d:
        names = list(d)
        x = range(len(names))
        ax.bar(
            [i - 0.2 for i in x],
            [d[n]["deliveries_per_s"] for n in names],
            0.4,
            alpha=0.5,
            color="#2a7ae2",
            label="deliveries/s",
        )
        ax.bar(
            [i + 0.2 for i in x],
            [d[n]["deliveries_per_cpu_s"] or 0 for n in names],
            0.4,
            color="#2a7ae2",
            label="per server-CPU-s",
        )
        ax.set_xticks(list(x), names)
        ax.legend()
    ax.set_title("s7 chatapp scale-out (memory vs Redis broker)")
    fig.suptitle(
        f"chatapp benchmarks — {res['meta']['machine']['cores']} cores, "
        f"{'quick' if res['meta']['quick'] else 'full'} run"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
