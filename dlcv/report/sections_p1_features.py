"""Problem 1, questions 1.5 and 1.6: model A's learned representations (PCA, and t-SNE over
training) from each run's feature dumps and figures. Part of :mod:`dlcv.report.sections_p1`, which
builds the section; kept in a module of its own because these two questions alone are a third of it."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from dlcv.report import configtext as ct
from dlcv.report import figures
from dlcv.report.common import Context, pct
from dlcv.report.doc import Figure, Image, Para, Section, Source, Table, not_available
from dlcv.report.featurestats import chance, knn_agreement, load_dumps, pca_summary
from dlcv.report.provenance import data_tags
from dlcv.report.runs import Run


# ------------------------------------------------------------------------------------ 1.5 / 1.6
def _features(run: Run):
    try:
        return load_dumps(run.path), ""
    except Exception as exc:  # noqa: BLE001
        return [], f"features/*.npz unreadable ({type(exc).__name__}: {exc})"


def pca_section(ctx: Context, a_runs: Sequence[Run]) -> Section:
    s = Section("")
    if not a_runs:
        return s.add(not_available("PCA", "no model A run was found"))
    shown, notes = [], []
    for r in a_runs:
        dumps, why = _features(r)
        stats = None
        if dumps:
            epoch, feats, labels = dumps[-1]
            stats = pca_summary(feats, labels, int(r.cfg("run.seed", 0) or 0))
        if r.has("figures/pca.png"):
            rel = ctx.assets.copy(r.file("figures/pca.png"), f"{r.name}_pca")
            made = "figures/pca.png"
        elif stats is not None:
            from dlcv.analysis.features import scatter

            path, rel = ctx.assets.reserve(f"{r.name}_pca", ".png")
            ev = stats["explained"]
            scatter(stats["points"], labels, f"PCA of penultimate features, epoch {epoch} "
                                             f"(explained variance {ev[0]:.0%} + {ev[1]:.0%})", path,
                    r.cfg("model.num_classes"))
            made = "recomputed from features/*.npz: figures/pca.png was missing"
        else:
            s.add(not_available(f"PCA of {r.name}", why or "neither figures/pca.png nor features/epoch_*.npz exists "
                                                           "(features.enabled was false?)"))
            continue
        shown.append((r, Image(rel, f"PCA of {r.name}", f"{r.role.label}: `{r.name}` ({made})")))
        if stats is not None:
            ev, k2, kf = stats["explained"], stats["knn_2d"], stats["knn_full"]
            base = chance(labels)
            verdict = ("the classes are largely separated already in two dimensions" if k2 is not None and k2 > 0.6 else
                       "classes form visible groups but overlap a lot in two dimensions" if k2 is not None and k2 > 3 * base else
                       "most classes overlap in two dimensions")
            notes.append(Para(f"`{r.name}` (epoch {epoch}, {len(labels):,} validation images): the two principal "
                              f"components explain {ev[0]:.1%} + {ev[1]:.1%} of the feature variance. A "
                              f"5-nearest-neighbour vote in this 2-D projection recovers the label of {pct(k2, 1)} of "
                              f"the images (largest class {pct(base, 1)}), against {pct(kf, 1)} in the full "
                              f"{feats.shape[1]}-D feature space: {verdict}; a linear 2-D view keeps only a small part "
                              f"of what separates 50 classes."))
    if shown:
        runs = [r for r, _ in shown]
        s.add(Figure([im for _, im in shown], "PCA (2 components) of model A's second-last-layer outputs on the "
                     "validation set at the last saved epoch, coloured by class.",
                     Source(runs, ["features/*.npz", "figures/pca.png"]), data_tags(runs),
                     "wide" if len(shown) > 1 else "normal"))
    s.blocks += notes
    return s


def tsne_section(ctx: Context, a_runs: Sequence[Run]) -> Section:
    s = Section("")
    if not a_runs:
        return s.add(not_available("t-SNE", "no model A run was found"))
    for r in a_runs:
        dumps, why = _features(r)
        saved = sorted(int(p.stem.split("_")[-1]) for p in (r.path / "figures").glob("tsne_epoch_*.png")
                       if p.stem.split("_")[-1].isdigit()) if (r.path / "figures").is_dir() else []
        epochs = [d[0] for d in dumps] or saved
        if r.has("figures/tsne.png"):
            rel = ctx.assets.copy(r.file("figures/tsne.png"), f"{r.name}_tsne")
            made = "figures/tsne.png"
        elif saved:
            imgs = [figures.read_rgb(r.path / "figures" / f"tsne_epoch_{e:03d}.png") for e in saved]
            path, rel = ctx.assets.reserve(f"{r.name}_tsne", ".png")
            figures.side_by_side(path, imgs, [f"epoch {e}" for e in saved])
            made = "the per-epoch figures/tsne_epoch_*.png, side by side"
        elif dumps:
            rel = _recompute_tsne(ctx, r, dumps)
            made = "recomputed by the report from features/*.npz (the t-SNE figures were missing)"
        else:
            s.add(not_available(f"t-SNE of {r.name}", why or "neither figures/tsne*.png nor features/epoch_*.npz "
                                                            "exists (features.enabled was false?)"))
            continue
        s.add(Figure([Image(rel, f"t-SNE of {r.name}")],
                     f"t-SNE of model {r.role.label}'s second-last-layer outputs on the validation set at epochs "
                     f"{', '.join(str(e) for e in epochs)} (`{r.name}`, {made}; same perplexity and seed at every "
                     f"epoch).", Source([r], ["features/*.npz", "figures/tsne.png"]), data_tags([r]), "wide"))
        trained = ct.epochs_trained(r)
        last = r.cfg("trainer.epochs")
        if epochs and (epochs[0] != 1 or epochs[-1] != last):
            s.add(Para(f"Note: the saved epochs {epochs} do not include both the first epoch and the last "
                       f"configured epoch ({last}; trained: {trained}).", "muted"))
        if dumps:
            scores = [(e, knn_agreement(f, lab)) for e, f, lab in dumps]
            rows = [[str(e), pct(v, 1)] for e, v in scores]
            s.add(Table(["epoch", "5-NN label agreement"], rows,
                        f"How well the classes separate in `{r.name}`'s feature space at the plotted epochs: the share "
                        f"of validation images whose 5 nearest neighbours (in the features t-SNE embeds) mostly "
                        f"share their label.", Source([r], ["features/*.npz"]), data_tags([r]), {1}, small=True))
            first, end = scores[0][1], scores[-1][1]
            if first is not None and end is not None:
                trend = ("rises" if end > first + 0.01 else "falls" if end < first - 0.01 else "stays about the same")
                s.add(Para(f"From epoch {scores[0][0]} to epoch {scores[-1][0]} the neighbourhood agreement {trend} "
                           f"({pct(first, 1)} → {pct(end, 1)}): " +
                           ("the embedding shows same-class points gathering into clusters as training goes on."
                            if trend == "rises" else "training did not make the neighbourhoods purer in this run.")))
    return s


def _recompute_tsne(ctx: Context, r: Run, dumps) -> str:
    from dlcv.analysis.features import scatter, tsne_2d

    import hashlib

    perplexity = float(r.cfg("features.tsne_perplexity", 30.0) or 30.0)
    seed = int(r.cfg("run.seed", 0) or 0)
    # t-SNE costs seconds per epoch: keep the result, keyed by the dumps it came from
    stamp = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in sorted((r.path / "features").glob("epoch_*.npz"))]
    key = hashlib.sha1(repr((str(r.path.resolve()), stamp, perplexity, seed)).encode()).hexdigest()[:16]
    cached = ctx.cache.parent / "tsne" / f"{key}.png" if ctx.cache else None
    if cached is not None and cached.is_file():
        return ctx.assets.copy(cached, f"{r.name}_tsne")
    fig = figures._figure(3.6 * len(dumps), 3.6)
    axes = np.atleast_1d(fig.subplots(1, len(dumps), squeeze=False)).ravel()
    for ax, (e, feats, labels) in zip(axes, dumps):
        scatter(tsne_2d(feats, perplexity, seed), labels, f"epoch {e}", ctx.out / "unused.png",
                r.cfg("model.num_classes"), ax=ax)
    fig.suptitle(f"t-SNE of penultimate features (perplexity {perplexity:g}, seed {seed})", fontsize=10)
    fig.tight_layout()
    if cached is not None:
        figures.save(fig, cached)
        return ctx.assets.copy(cached, f"{r.name}_tsne")
    path, rel = ctx.assets.reserve(f"{r.name}_tsne", ".png")
    figures.save(fig, path)
    return rel
