"""A model's architecture figure, drawn at training time from the model itself; the report only
reads what this writes (it never rebuilds a model from a config). Job-side code: it belongs with
the jobs (dlcv/analysis/), called once per run after training.

    write_architecture(model, size, run_dir) ->  figures/architecture.svg   torchview + Graphviz dot
                                                 figures/architecture.png   (no dot: a matplotlib flow)
                                                 figures/architecture.json  method, params, input, layers

The model is deep-copied to PyTorch's meta device (shapes only: no memory for weights, no
arithmetic). The nesting depth drawn is the deepest whose graph has at most MAX_NODES boxes, so a
figure stays legible on a printed page. `layers` lists the leaf modules in call order, with
activations, normalisation and dropout folded into the layer before them.
"""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Optional

ARCH_JSON = "figures/architecture.json"
ARCH_SVG = "figures/architecture.svg"
ARCH_PNG = "figures/architecture.png"
MAX_NODES = 26
FOLD = ("ReLU", "GELU", "SiLU", "Hardswish", "Hardsigmoid", "Dropout", "Dropout2d", "BatchNorm2d", "BatchNorm1d",
        "LayerNorm", "LayerNorm2d", "Identity", "Sigmoid", "GroupNorm", "StochasticDepth")


def dot_available() -> bool:
    return shutil.which("dot") is not None


def _shape(out) -> str:
    if hasattr(out, "shape"):
        return "×".join(str(d) for d in out.shape[1:])
    values = out.values() if isinstance(out, dict) else out if isinstance(out, (tuple, list)) else ()
    return ", ".join(_shape(v) for v in values)


def trace(model, size: int) -> list[dict]:
    """Every module call in call order: name, depth (the model's children are 1), module, leaf, output shape."""
    import torch

    names = {m: n for n, m in model.named_modules()}
    calls: list[dict] = []
    open_calls: dict[int, list[dict]] = {}

    def pre(module, args):
        name = names.get(module, "?")
        call = {"name": name, "depth": name.count(".") + 1 if name else 0, "module": module,
                "leaf": not any(True for _ in module.children()), "out": ""}
        calls.append(call)
        open_calls.setdefault(id(module), []).append(call)

    def post(module, args, out):
        if open_calls.get(id(module)):
            open_calls[id(module)].pop()["out"] = _shape(out)

    handles = [h for m in model.modules() for h in (m.register_forward_pre_hook(pre), m.register_forward_hook(post))]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, size, size, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return calls


def at_depth(calls: list[dict], depth: int) -> list[dict]:
    return [c for c in calls if c["depth"] == depth or (0 < c["depth"] < depth and c["leaf"])]


def choose_depth(calls: list[dict]) -> int:
    """The deepest nesting level whose graph has at most MAX_NODES boxes (input and output included)."""
    fits = [d for d in range(1, max((c["depth"] for c in calls), default=1) + 1)
            if len(at_depth(calls, d)) + 2 <= MAX_NODES]
    return max(fits, default=1)


def describe(m) -> str:
    t = type(m).__name__

    def one(v):
        return v[0] if isinstance(v, (tuple, list)) else v

    if t in ("Conv2d", "ConvTranspose2d"):
        k = m.kernel_size
        s = f"{t} {m.in_channels}→{m.out_channels}, {k[0]}×{k[1]}"
        s += f", stride {one(m.stride)}" if one(m.stride) != 1 else ""
        s += f", dilation {one(m.dilation)}" if one(m.dilation) != 1 else ""
        return s + (f", groups {m.groups}" if m.groups > 1 else "")
    if t == "Linear":
        return f"Linear {m.in_features}→{m.out_features}"
    if t in ("MaxPool2d", "AvgPool2d"):
        return f"{t} {one(m.kernel_size)}×{one(m.kernel_size)}, stride {one(m.stride)}"
    if t.startswith("Adaptive"):
        return f"{t} → {m.output_size}"
    return f"{t} p={m.p:g}" if t.startswith("Dropout") else t


def layer_rows(calls: list[dict]) -> list[list]:
    """[name, layer, output shape, parameters] of the leaf layers in call order."""
    rows: list[list] = []
    for c in (c for c in calls if c["leaf"] and c["depth"]):
        params = sum(p.numel() for p in c["module"].parameters(recurse=False))
        t = type(c["module"]).__name__
        if rows and t in FOLD:  # an activation / norm / dropout belongs to the layer before it
            rows[-1][1] += f" + {describe(c['module']) if t.startswith('Dropout') else t}"
            rows[-1][2] = c["out"] or rows[-1][2]
            rows[-1][3] += params
        else:
            rows.append([c["name"], describe(c["module"]), c["out"], params])
    return rows


def _torchview_svg(model, size: int, depth: int, path: Path) -> None:
    from torchview import draw_graph

    from dlcv.io import atomic_path

    g = draw_graph(model, input_size=(1, 3, size, size), device="meta", depth=depth, expand_nested=True,
                   graph_dir="TB", hide_inner_tensors=True, roll=True, save_graph=False).visual_graph
    g.graph_attr.update(ranksep="0.22", nodesep="0.25", pad="0.1", bgcolor="white")
    g.node_attr.update(fontname="Helvetica", fontsize="10")
    g.edge_attr.update(arrowsize="0.6")
    with atomic_path(path) as tmp:
        tmp.write_bytes(g.pipe(format="svg"))


def _flow_png(calls: list[dict], depth: int, title: str, path: Path) -> None:
    """The no-Graphviz diagram: one box per module in call order, snaking into columns of 14."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch

    from dlcv.io import atomic_path

    shown = [c for c in at_depth(calls, depth) if not (c["leaf"] and type(c["module"]).__name__ == "Identity")]
    nodes = [("input", "")] + [(describe(c["module"]) if c["leaf"] else
                                f"{c['name'].split('.')[-1]}: {type(c['module']).__name__}", c["out"])
                               for c in shown] + [("output", "")]
    per_col = 14
    cols, rows = (len(nodes) + per_col - 1) // per_col, min(per_col, len(nodes))
    fig = Figure(figsize=(2.7 * cols + 0.2, 0.52 * rows + 0.5), dpi=200)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.set(xlim=(0, cols), ylim=(rows, -0.1))
    ax.set_axis_off()
    arrow = dict(arrowstyle="->", lw=0.6, color="#4a6a8a")
    for i, (label, shape) in enumerate(nodes):
        c, r = divmod(i, per_col)
        ax.add_patch(FancyBboxPatch((c + 0.06, r + 0.08), 0.88, 0.7, boxstyle="round,pad=0.01,rounding_size=0.06",
                                    fc="#e6f0fa" if 0 < i < len(nodes) - 1 else "#fff4d6", ec="#4a6a8a", lw=0.7))
        ax.text(c + 0.5, r + 0.36, label[:48], ha="center", va="center", fontsize=6.5)
        ax.text(c + 0.5, r + 0.64, shape, ha="center", va="center", fontsize=5.8, color="#555")
        c2, r2 = divmod(i + 1, per_col)
        if i + 1 < len(nodes) and c2 == c:
            ax.annotate("", (c + 0.5, r2 + 0.08), (c + 0.5, r + 0.78), arrowprops=arrow)
        elif i + 1 < len(nodes):  # to the top of the next column, through the gap between the columns
            ax.plot([c + 0.94, c + 0.97, c + 0.97], [r + 0.43, r + 0.43, 0.43], lw=0.6, color="#4a6a8a")
            ax.annotate("", (c2 + 0.06, 0.43), (c + 0.97, 0.43), arrowprops=arrow)
    ax.set_title(title, fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def write_architecture(model, size: int, run_dir: str | Path) -> dict:
    """Draw `model` (fed 1x3x`size`x`size` images) into <run_dir>/figures/; returns architecture.json."""
    import copy

    from dlcv.runfolder import write_json

    run_dir = Path(run_dir)
    model = copy.deepcopy(model).to("meta")
    calls = trace(model, size)
    depth = choose_depth(calls)
    info = {"input": [3, size, size], "params": sum(p.numel() for p in model.parameters()), "depth": depth,
            "layers": layer_rows(calls)}
    how = f"module nesting depth {depth}, input 1×3×{size}×{size}"
    why = "Graphviz `dot` is not installed"
    if dot_available():
        try:
            _torchview_svg(model, size, depth, run_dir / ARCH_SVG)
            info.update(figure=ARCH_SVG, method=f"drawn by torchview + Graphviz dot from the model itself ({how})")
        except Exception as exc:  # noqa: BLE001 - the matplotlib flow below still draws the model
            why = f"torchview/Graphviz failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    if "figure" not in info:
        _flow_png(calls, depth, type(model).__name__, run_dir / ARCH_PNG)
        info.update(figure=ARCH_PNG, method=f"a matplotlib flow of the model's modules in call order ({how}); "
                                            f"{why}, so torchview's graph was not drawn")
    write_json(run_dir / ARCH_JSON, info)
    return info


def draw_run_architecture(model, size: int, run_dir: str | Path) -> Optional[dict]:
    """write_architecture for a job that has finished training: a figure that cannot be drawn is a
    warning, never a failed run."""
    try:
        return write_architecture(model, size, run_dir)
    except Exception as exc:  # noqa: BLE001 - the weights and numbers are already safe on disk
        warnings.warn(f"{run_dir}: the architecture figure was not drawn ({type(exc).__name__}: {exc})", stacklevel=2)
        return None
