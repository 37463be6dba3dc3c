"""Architecture figures generated from the model itself.

The model is rebuilt from a run's resolved config exactly as the job builds it, with pretrained
weights disabled (`ClassificationTask(config, inference=True)` / `SegmentationTask(...)`), on
PyTorch's meta device: no memory for 134M FCN32s weights, no arithmetic, shapes only.

* With Graphviz's `dot` on PATH: torchview draws the module graph (SVG). The nesting depth is the
  deepest one whose graph has at most MAX_NODES boxes, so a figure stays legible on a printed page.
* Without it: an equivalent generated diagram, a matplotlib flow of the same modules (type, main
  hyper-parameters, output shape), in several columns when long.

Either way `layer_rows` gives the per-layer table (leaf modules in call order; activations,
normalisation and dropout folded into the layer before them).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from dlcv.report.runs import Run

MAX_NODES = 26
FOLD = ("ReLU", "GELU", "SiLU", "Hardswish", "Hardsigmoid", "Dropout", "Dropout2d", "BatchNorm2d", "BatchNorm1d",
        "LayerNorm", "LayerNorm2d", "Identity", "Sigmoid", "GroupNorm", "StochasticDepth")


@dataclass
class Call:
    order: int
    name: str  # qualified module name ("" = the model)
    depth: int  # torchview's depth: the model's children are 1
    module: Any
    leaf: bool
    out_shape: str = ""


@dataclass
class LayerRow:
    name: str
    layer: str
    output: str
    params: int


@dataclass
class Architecture:
    run: Run
    figure: Optional[Path] = None  # absolute path of the written figure
    method: str = ""  # how the figure was drawn (shown in the caption)
    depth: int = 0
    input_shape: tuple = ()
    params: int = 0
    rows: list[LayerRow] = field(default_factory=list)
    error: str = ""


def build_model(run: Run):
    """The run's model on the meta device, built from its resolved config, no pretrained weights."""
    import torch

    if run.config is None:
        raise ValueError(run.problems.get("config.yaml", "config.yaml is missing"))
    with torch.device("meta"):
        if run.cfg("task") == "classify":
            from dlcv.tasks.classification import ClassificationTask

            return ClassificationTask(run.config, inference=True).model
        if run.cfg("task") == "segment":
            from dlcv.tasks.segmentation import SegmentationTask

            return SegmentationTask(run.config, inference=True).segmenter
    raise ValueError(f"no architecture figure for task {run.cfg('task')!r}")


def input_size(run: Run) -> int:
    """The side of the images the model is fed: P1 32 px; P3 the validation images' size."""
    if run.cfg("task") == "segment":
        inputs = sorted((run.path / "masks" / "inputs").glob("*_sat.png"))
        if inputs:
            from PIL import Image

            try:
                with Image.open(inputs[0]) as img:
                    return int(img.size[0])
            except OSError:
                pass
        return 512
    return 32 if run.cfg("dataset") == "p1" else 128


def _shape(out) -> str:
    import torch

    if isinstance(out, torch.Tensor):
        return "×".join(str(d) for d in out.shape[1:])
    if isinstance(out, dict):
        return ", ".join(_shape(v) for v in out.values())
    if isinstance(out, (tuple, list)):
        return ", ".join(_shape(v) for v in out)
    return ""


def trace(model, size: int) -> list[Call]:
    """Every module call (in call order) with its output shape, on the meta device."""
    import torch

    calls: list[Call] = []
    names = {m: n for n, m in model.named_modules()}
    open_calls: dict[int, list[Call]] = {}
    handles = []

    def pre(module, args):
        name = names.get(module, "?")
        call = Call(len(calls), name, 0 if not name else name.count(".") + 1, module,
                    not any(True for _ in module.children()))
        calls.append(call)
        open_calls.setdefault(id(module), []).append(call)

    def post(module, args, out):
        stack = open_calls.get(id(module))
        if stack:
            stack.pop().out_shape = _shape(out)

    for m in model.modules():
        handles.append(m.register_forward_pre_hook(pre))
        handles.append(m.register_forward_hook(post))
    try:
        with torch.no_grad():
            model.eval()
            model(torch.zeros(1, 3, size, size, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return calls


def at_depth(calls: list[Call], depth: int) -> list[Call]:
    return [c for c in calls if c.depth == depth or (0 < c.depth < depth and c.leaf)]


def choose_depth(calls: list[Call], max_nodes: int = MAX_NODES) -> int:
    """The deepest nesting level whose graph has at most `max_nodes` boxes (at least 1)."""
    deepest = max((c.depth for c in calls), default=1)
    best = 1
    for d in range(1, deepest + 1):
        if len(at_depth(calls, d)) + 2 <= max_nodes:  # + input and output tensors
            best = d
    return best


def describe(m) -> str:
    t = type(m).__name__

    def pair(v):
        v = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
        return f"{v[0]}×{v[1]}" if v[0] != v[1] else f"{v[0]}×{v[0]}"

    if t in ("Conv2d", "ConvTranspose2d"):
        s = f"{t} {m.in_channels}→{m.out_channels}, {pair(m.kernel_size)}"
        stride = m.stride if isinstance(m.stride, tuple) else (m.stride, m.stride)
        dil = m.dilation if isinstance(m.dilation, tuple) else (m.dilation, m.dilation)
        if stride != (1, 1):
            s += f", stride {stride[0]}"
        if dil != (1, 1):
            s += f", dilation {dil[0]}"
        if getattr(m, "groups", 1) > 1:
            s += f", groups {m.groups}"
        return s
    if t == "Linear":
        return f"Linear {m.in_features}→{m.out_features}"
    if t in ("MaxPool2d", "AvgPool2d"):
        return f"{t} {pair(m.kernel_size)}, stride {m.stride if not isinstance(m.stride, tuple) else m.stride[0]}"
    if t.startswith("Adaptive"):
        return f"{t} → {m.output_size}"
    if t.startswith("Dropout"):
        return f"{t} p={m.p:g}"
    return t


def layer_rows(calls: list[Call]) -> list[LayerRow]:
    """Leaf layers in call order, activations/normalisation/dropout folded into the layer before."""
    rows: list[LayerRow] = []
    for c in calls:
        if not c.leaf or c.depth == 0:
            continue
        params = sum(p.numel() for p in c.module.parameters(recurse=False))
        t = type(c.module).__name__
        if rows and t in FOLD:
            r = rows[-1]
            r.layer += f" + {t if not t.startswith('Dropout') else describe(c.module)}"
            r.params += params
            r.output = c.out_shape or r.output
            continue
        rows.append(LayerRow(c.name, describe(c.module), c.out_shape, params))
    return rows


def _torchview_svg(model, size: int, depth: int, path: Path) -> Path:
    from torchview import draw_graph

    graph = draw_graph(model, input_size=(1, 3, size, size), device="meta", depth=depth, expand_nested=True,
                       graph_dir="TB", hide_inner_tensors=True, roll=True, save_graph=False)
    g = graph.visual_graph
    g.graph_attr.update(ranksep="0.22", nodesep="0.25", pad="0.1", bgcolor="white")
    g.node_attr.update(fontname="Helvetica", fontsize="10")
    g.edge_attr.update(arrowsize="0.6")
    svg = g.pipe(format="svg")
    from dlcv.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_bytes(svg)
    return path


def _flow_png(calls: list[Call], depth: int, title: str, path: Path) -> Path:
    """The no-Graphviz diagram: boxes in call order (snaking into columns), one per module."""
    from matplotlib.patches import FancyBboxPatch

    from dlcv.report.figures import _figure, save

    shown = [c for c in at_depth(calls, depth) if not (c.leaf and type(c.module).__name__ == "Identity")]
    nodes = [("input", "")] + [(describe(c.module) if c.leaf else f"{c.name.split('.')[-1]}: {type(c.module).__name__}",
                                c.out_shape) for c in shown] + [("output", "")]
    per_col = 14
    cols = (len(nodes) + per_col - 1) // per_col
    rows = min(per_col, len(nodes))
    fig = _figure(2.7 * cols + 0.2, 0.52 * rows + 0.5)
    ax = fig.subplots()
    ax.set_xlim(0, cols)
    ax.set_ylim(rows, -0.1)
    ax.set_axis_off()
    for i, (label, shape) in enumerate(nodes):
        c, r = divmod(i, per_col)
        box = FancyBboxPatch((c + 0.06, r + 0.08), 0.88, 0.7, boxstyle="round,pad=0.01,rounding_size=0.06",
                             fc="#e6f0fa" if 0 < i < len(nodes) - 1 else "#fff4d6", ec="#4a6a8a", lw=0.7)
        ax.add_patch(box)
        ax.text(c + 0.5, r + 0.36, label[:48], ha="center", va="center", fontsize=6.5)
        if shape:
            ax.text(c + 0.5, r + 0.64, shape, ha="center", va="center", fontsize=5.8, color="#555")
        if i + 1 < len(nodes):
            c2, r2 = divmod(i + 1, per_col)
            if c2 == c:
                ax.annotate("", (c + 0.5, r2 + 0.08), (c + 0.5, r + 0.78),
                            arrowprops=dict(arrowstyle="->", lw=0.6, color="#4a6a8a"))
            else:  # to the top of the next column, through the gap between the columns
                ax.plot([c + 0.94, c + 0.97, c + 0.97], [r + 0.43, r + 0.43, 0.43], lw=0.6, color="#4a6a8a")
                ax.annotate("", (c2 + 0.06, 0.43), (c + 0.97, 0.43),
                            arrowprops=dict(arrowstyle="->", lw=0.6, color="#4a6a8a"))
    ax.set_title(title, fontsize=8)
    return save(fig, path)


def dot_available() -> bool:
    return shutil.which("dot") is not None


def architecture(run: Run, dest_stem: Path, title: str) -> Architecture:
    """Draw the run's model into dest_stem + (.svg | .png); never raises (errors -> .error)."""
    arch = Architecture(run)
    try:
        model = build_model(run)
        size = input_size(run)
        arch.input_shape = (3, size, size)
        arch.params = sum(int(np.prod(p.shape)) for p in model.parameters())
        calls = trace(model, size)
        arch.rows = layer_rows(calls)
        arch.depth = choose_depth(calls)
    except Exception as exc:  # noqa: BLE001 - shown as "not available" with the reason
        arch.error = f"the model could not be rebuilt from {run.name}/config.yaml ({type(exc).__name__}: {exc})"
        return arch
    if dot_available():
        try:
            arch.figure = _torchview_svg(model, size, arch.depth, Path(f"{dest_stem}.svg"))
            arch.method = (f"drawn by torchview + Graphviz dot from the model itself (module nesting depth "
                           f"{arch.depth}, input 1×{size}×{size})")
            return arch
        except Exception as exc:  # noqa: BLE001 - fall back to the matplotlib diagram
            fallback_why = f"torchview/Graphviz failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    else:
        fallback_why = "Graphviz `dot` is not installed"
    try:
        arch.figure = _flow_png(calls, arch.depth, title, Path(f"{dest_stem}.png"))
        arch.method = (f"a matplotlib flow of the model's modules in call order, generated from the model "
                       f"(depth {arch.depth}, input 1×{size}×{size}); {fallback_why}, so torchview's graph "
                       f"was not drawn")
    except Exception as exc:  # noqa: BLE001
        arch.error = f"no diagram could be drawn ({fallback_why}; matplotlib: {type(exc).__name__}: {exc})"
    return arch


ARCH_VERSION = 1  # bump when the drawing changes: cached figures are redrawn


def cached_architecture(run: Run, cache_dir: Optional[Path], stem: str, title: str) -> Architecture:
    """`architecture` through a cache keyed by what the drawing depends on (task, dataset, model
    config, input size, whether dot exists): rebuilding a report redraws nothing unchanged."""
    import dataclasses
    import hashlib
    import json

    from dlcv.io import write_text

    if cache_dir is None or run.config is None:
        return architecture(run, Path(stem), title)
    key_src = {"task": run.cfg("task"), "dataset": run.cfg("dataset"), "model": run.cfg("model"),
               "size": input_size(run), "dot": dot_available(), "v": ARCH_VERSION, "max_nodes": MAX_NODES}
    key = hashlib.sha1(json.dumps(key_src, sort_keys=True, default=str).encode()).hexdigest()[:16]
    meta_file = cache_dir / f"{key}.json"
    if meta_file.is_file():
        try:
            meta = json.loads(meta_file.read_text())
            fig = cache_dir / meta["figure"] if meta.get("figure") else None
            if fig is None or fig.is_file():
                return Architecture(run, fig, meta["method"], meta["depth"], tuple(meta["input_shape"]),
                                    meta["params"], [LayerRow(**r) for r in meta["rows"]], meta["error"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache entry: draw again
    cache_dir.mkdir(parents=True, exist_ok=True)
    arch = architecture(run, cache_dir / key, title)
    if not arch.error:  # errors are not cached: the next build tries again
        write_text(meta_file, json.dumps({
            "figure": arch.figure.name if arch.figure else None, "method": arch.method, "depth": arch.depth,
            "input_shape": list(arch.input_shape), "params": arch.params,
            "rows": [dataclasses.asdict(r) for r in arch.rows], "error": arch.error}) + "\n")
    return arch
