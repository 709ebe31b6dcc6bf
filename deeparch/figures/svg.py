"""A tiny SVG canvas for block diagrams: boxes, trapezoids, circles, arrows and labels."""

from __future__ import annotations

WIDTH, HEIGHT = 360, 200
BLUE, ORANGE, GREEN, RED, TEAL, PURPLE, GREY = (
    "#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#888888",
)  # fmt: skip


class Drawing:
    """A tiny SVG canvas: boxes, arrows and labels, enough for a block diagram."""

    def __init__(self, title: str) -> None:
        self.items: list[str] = []
        self.text(WIDTH / 2, 18, title, size=13, weight="bold")

    def box(self, x: float, y: float, w: float, h: float, colour: str, label: str = "") -> None:
        self.items.append(
            f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="4" fill="{colour}" '
            f'fill-opacity="0.25" stroke="{colour}" stroke-width="1.5"/>'
        )
        if label:
            self.text(x + w / 2, y + h / 2 + 4, label, size=10)

    def trapezoid(self, x: float, y: float, w: float, h_left: float, h_right: float, colour: str,
                  label: str = "") -> None:  # fmt: skip
        """A layer that narrows (encoder) or widens (decoder) from left to right."""
        mid = y + max(h_left, h_right) / 2
        points = [
            (x, mid - h_left / 2), (x + w, mid - h_right / 2),
            (x + w, mid + h_right / 2), (x, mid + h_left / 2),
        ]  # fmt: skip
        coords = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        self.items.append(
            f'<polygon points="{coords}" fill="{colour}" fill-opacity="0.25" '
            f'stroke="{colour}" stroke-width="1.5"/>'
        )
        if label:
            self.text(x + w / 2, mid + 4, label, size=10)

    def circle(self, x: float, y: float, r: float, colour: str) -> None:
        self.items.append(
            f'<circle cx="{x}" cy="{y}" r="{r}" fill="{colour}" fill-opacity="0.35" '
            f'stroke="{colour}" stroke-width="1.2"/>'
        )

    def line(self, x1: float, y1: float, x2: float, y2: float, colour: str = GREY,
             width: float = 1.0, arrow: bool = False, dashed: bool = False) -> None:  # fmt: skip
        extra = ' marker-end="url(#arrow)"' if arrow else ""
        extra += ' stroke-dasharray="4 3"' if dashed else ""
        self.items.append(
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" '
            f'stroke-width="{width}"{extra}/>'
        )

    def path(self, d: str, colour: str = GREY, arrow: bool = True, dashed: bool = False) -> None:
        extra = ' marker-end="url(#arrow)"' if arrow else ""
        extra += ' stroke-dasharray="4 3"' if dashed else ""
        self.items.append(
            f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.3"{extra}/>'
        )

    def text(self, x: float, y: float, text: str, size: int = 10, weight: str = "normal",
             colour: str = "#333", anchor: str = "middle") -> None:  # fmt: skip
        """A label centred on x, or with anchor "start"/"end" beginning or ending there."""
        safe = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        self.items.append(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" font-weight="{weight}" '
            f'fill="{colour}" text-anchor="{anchor}" font-family="sans-serif">{safe}</text>'
        )

    def svg(self) -> str:
        marker = (
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" '
            'markerHeight="6" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
            f'fill="{GREY}"/></marker></defs>'
        )
        body = "\n  ".join(self.items)
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}">\n  {marker}\n  '
            f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>\n  {body}\n</svg>\n'
        )


def chain(d: Drawing, xs: list[float], y: float) -> None:
    """Arrows between consecutive x positions at height y."""
    for x1, x2 in zip(xs[:-1], xs[1:]):
        d.line(x1, y, x2, y, arrow=True)
