"""Set heads, circle loss, P x K sampler, training data, evaluation, and a two-worker Ray Train DDP run."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from reid_ray.models.set_heads import AttentionPool, MeanPool, TrainedHead, TransformerHead, build_head, pad_sets, save_head
from reid_ray.records import Instances
from reid_ray.config import LossConfig, SamplerConfig, TrainConfig
from reid_ray.train.data import (
    SampleTable, ingest_market1501, parse_market1501_name, read_samples, write_samples,
)
from reid_ray.train.losses import NonFiniteGuard, NonFiniteLossError, make_circle_loss
from reid_ray.train.sampler import PKSampler, TrackletIndex, shard_shots

D = 12


def _heads() -> list[torch.nn.Module]:
    torch.manual_seed(0)
    return [MeanPool(D, 8), AttentionPool(D, 8, key_dim=6), TransformerHead(D, 8, d_model=16, layers=2, heads=2)]


@pytest.mark.parametrize("head", _heads(), ids=["mean", "attention", "transformer"])
def test_set_heads_shapes_padding_and_weights(head):
    head.eval()
    rng = np.random.default_rng(0)
    sets = [rng.normal(size=(n, D)).astype(np.float32) for n in (3, 7, 1, 5)]
    x, valid = pad_sets(sets)
    assert x.shape == (4, 7, D) and valid.sum(1).tolist() == [3, 7, 1, 5]
    with torch.no_grad():
        emb, w = head.pool_with_weights(x, valid)
        assert emb.shape == (4, 8)
        assert torch.allclose(emb.norm(dim=1), torch.ones(4), atol=1e-5)
        assert torch.allclose(head(x, valid), emb, atol=1e-5)  # forward and the weights path agree
        assert torch.allclose(w.sum(1), torch.ones(4), atol=1e-5) and (w[~valid] == 0).all()
        # Padding never changes the output: each set alone, and with garbage in the padded slots.
        for i, s in enumerate(sets):
            alone = head(*pad_sets([s]))
            assert torch.allclose(alone[0], emb[i], atol=1e-5)
        noisy = x.clone()
        noisy[~valid] = 1e3
        assert torch.allclose(head(noisy, valid), emb, atol=1e-5)


def test_trained_head_roundtrip(tmp_path):
    torch.manual_seed(1)
    spec = {"kind": "transformer", "in_dim": D, "out_dim": 8, "d_model": 16, "layers": 1, "heads": 2}
    model = build_head(spec).eval()
    path = save_head(tmp_path / "head.pt", model, spec)
    head = TrainedHead(path, batch_size=2)
    sets = [np.random.default_rng(i).normal(size=(n, D)).astype(np.float32) for i, n in enumerate((4, 2, 9))]
    out = head.pool(sets)
    with torch.no_grad():
        ref = model(*pad_sets(sets)).numpy()
    assert out.shape == (3, 8) and np.allclose(out, ref, atol=1e-5)
    emb, weights = head.attention(sets)
    assert [len(w) for w in weights] == [4, 2, 9] and np.allclose([w.sum() for w in weights], 1, atol=1e-5)
    with pytest.raises(ValueError, match="not a"):
        torch.save({"x": 1}, tmp_path / "bad.pt")
        TrainedHead(tmp_path / "bad.pt")


# ------------------------------------------------------------------------------------------ loss


def _circle_loss_by_hand(emb: np.ndarray, labels: np.ndarray, m: float, gamma: float) -> float:
    """Sun et al. 2020, pair form: per anchor softplus(logsumexp_n(g an (sn - dn)) + logsumexp_p(-g ap (sp - dp)))
    with ap = [1 + m - sp]+, an = [sn + m]+, dp = 1 - m, dn = m; mean over anchors with a non-zero loss."""
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    s = e @ e.T
    per = []
    for i in range(len(e)):
        pos = [s[i, j] for j in range(len(e)) if j != i and labels[j] == labels[i]]
        neg = [s[i, j] for j in range(len(e)) if labels[j] != labels[i]]
        if not pos or not neg:  # an anchor without a positive or a negative has no loss
            continue
        lp = [-gamma * max(1 + m - sp, 0) * (sp - (1 - m)) for sp in pos]
        ln = [gamma * max(sn + m, 0) * (sn - m) for sn in neg]
        lse = lambda v: max(v) + math.log(sum(math.exp(x - max(v)) for x in v))  # noqa: E731
        per.append(math.log1p(math.exp(lse(lp) + lse(ln))))
    per = [p for p in per if p > 0]
    return sum(per) / len(per)


def test_circle_loss_matches_hand_computation():
    emb = np.array([[1.0, 0.1, 0.0], [0.8, 0.3, 0.1], [0.1, 1.0, 0.2], [0.0, 0.7, 0.9], [0.5, 0.5, 0.5]])
    labels = np.array([0, 0, 1, 1, 2])  # label 2 has no positive: that anchor contributes nothing
    cfg = LossConfig(m=0.25, gamma=4.0)
    got = make_circle_loss(cfg)(torch.tensor(emb, dtype=torch.float32), torch.tensor(labels)).item()
    assert got == pytest.approx(_circle_loss_by_hand(emb, labels, 0.25, 4.0), rel=1e-5)


def test_gamma_bound_and_nonfinite_guard():
    with pytest.raises(ValueError, match="overflow"):
        LossConfig(gamma=1000)
    guard = NonFiniteGuard(max_consecutive=2)
    assert guard.ok(torch.tensor(1.0))
    assert not guard.ok(torch.tensor(float("nan"))) and not guard.ok(torch.tensor(float("inf")))
    assert guard.ok(torch.tensor(0.5)) and guard.skipped == 2  # a finite step resets the run
    guard.ok(torch.tensor(float("nan")))
    guard.ok(torch.tensor(float("nan")))
    with pytest.raises(NonFiniteLossError, match="consecutive"):
        guard.ok(torch.tensor(float("nan")))
    # A NaN embedding really gives a NaN circle loss (what the guard is for).
    emb = torch.randn(4, 3)
    emb[0, 0] = float("nan")
    assert not torch.isfinite(make_circle_loss(LossConfig())(emb, torch.tensor([0, 0, 1, 1])))


# ------------------------------------------------------------------------------------------ data


def _toy_table(n_videos=2, shots=2, people=4, frames=6, dim=D, seed=0, noise=0.6) -> SampleTable:
    """Patch sets around per-identity prototypes; every shot shows all of its video's people."""
    rng = np.random.default_rng(seed)
    rows = []
    for v in range(n_videos):
        protos = rng.normal(size=(people, 3, dim))  # three "parts" per person
        for s in range(shots):
            for p in range(people):
                for f in range(frames):
                    n = int(rng.integers(2, 7))
                    parts = protos[p, rng.integers(0, 3, n)]
                    rows.append({"video_id": f"v{v}", "shot_id": f"s{s}", "tracklet_id": f"t{p}", "identity": f"v{v}/{p}",
                                 "frame": f, "patches": (parts + noise * rng.normal(size=parts.shape)).astype(np.float32)})
    return rows


def test_parquet_roundtrip(tmp_path):
    rows = _toy_table(n_videos=1, shots=1, people=2, frames=2)
    rows[0]["identity"] = None
    t = read_samples(write_samples(tmp_path / "s.parquet", rows))
    assert len(t) == 4 and t.dim == D and t.identity[0] is None and t.identity[1] == "v0/0"
    for r, p in zip(rows, t.patches):
        assert np.array_equal(r["patches"], p)


def test_sampler_pk_positives_hard_negatives_shards(tmp_path):
    table = read_samples(write_samples(tmp_path / "s.parquet", _toy_table(n_videos=3, shots=2, people=4)))
    index = TrackletIndex.from_table(table)
    cfg = SamplerConfig(P=4, K=3, same_shot_fraction=0.5)
    for world in (1, 2):
        seen = []
        for rank in range(world):
            sampler = PKSampler(index, cfg, seed=3, rank=rank, world_size=world)
            batches = list(sampler)
            assert len(batches) == sampler.batches_per_epoch() >= 1
            for rows, labels in batches:
                assert len(rows) == 12 and len(set(labels.tolist())) == 4
                keys = [table.tracklet_keys()[r] for r in rows]
                for k in range(4):  # positives: K views of one tracklet
                    assert len(set(keys[3 * k : 3 * k + 3])) == 1
                anchor = keys[0]
                same_shot = {k for k in keys if k[:2] == anchor[:2]}
                assert len(same_shot) == 2  # round(P * 0.5) tracklets from the anchor's shot
                assert {k[0] for k in keys if k[:2] != anchor[:2]} .isdisjoint({anchor[0]})  # rest: other videos
                seen += keys
            # deterministic with the seed
            assert all(np.array_equal(a[0], b[0]) for a, b in zip(batches, PKSampler(index, cfg, 3, rank, world)))
        shards = shard_shots(index, world, seed=3, epoch=0)
        assert sum(len(s) for s in shards) == len(index)
        assert len(set(np.concatenate(shards).tolist())) == len(index)  # disjoint
        for s in shards:  # whole shots per rank
            assert set(index.shot[s].tolist()).isdisjoint(set(np.setdiff1d(index.shot, index.shot[s]).tolist()))
    s1, s2 = PKSampler(index, cfg, 3), PKSampler(index, cfg, 3)
    s2.set_epoch(1)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(s1, s2))  # epochs differ


def _mined_rows() -> list[dict]:
    """Unlabelled tracklets: video v0, one shot: A (frames 0-9) and B (5-14) in view together, C (20-29) another
    tracklet after A and B left (maybe A's person back); video v1: D (0-9). One patch per view."""
    spans = {"A": ("v0", range(0, 10)), "B": ("v0", range(5, 15)), "C": ("v0", range(20, 30)), "D": ("v1", range(0, 10))}
    rng = np.random.default_rng(0)
    return [{"video_id": v, "shot_id": "s0", "tracklet_id": t, "identity": None, "frame": f,
             "patches": rng.normal(size=(1, 3)).astype(np.float32)} for t, (v, frames) in spans.items() for f in frames]


def test_unlabelled_tracklets_are_negatives_only_when_known_to_differ(tmp_path):
    from reid_ray.train.data import from_arrow, to_arrow

    rows = _mined_rows() + [dict(r, video_id="syn", identity=f"syn/{r['tracklet_id'] in 'AB'}") for r in _mined_rows()[:30]]
    index = TrackletIndex.from_table(from_arrow(to_arrow(rows)))
    name = {k[0] + "/" + k[2]: t for t, k in enumerate(index.keys)}
    A, B, C, D = name["v0/A"], name["v0/B"], name["v0/C"], name["v1/D"]
    sA, sB, sC = name["syn/A"], name["syn/B"], name["syn/C"]  # labelled: A and B one person, C another: labels decide
    everyone = np.array([A, B, C, D, sA, sB, sC])

    def negatives(mode):
        m = index.may_be_negatives(everyone, everyone, mode)
        assert np.array_equal(m, m.T) and not m.diagonal().any()
        return {(int(a), int(b)) for a, b in zip(*np.nonzero(m)) if a < b}

    pair = lambda x, y: (int(np.flatnonzero(everyone == x)[0]), int(np.flatnonzero(everyone == y)[0]))  # noqa: E731
    syn = {pair(sA, sC), pair(sB, sC)}  # known identities: differ -> negatives, in every mode (sA-sB: one person)
    cross = {pair(x, y) for x in (A, B, C) for y in (D, sA, sB, sC)} | {pair(D, y) for y in (sA, sB, sC)}
    assert negatives("cooccurring") == {pair(A, B)} | syn  # C never in view with A or B: maybe one of them
    assert negatives("cooccurring_or_other_video") == {pair(A, B)} | syn | cross
    assert negatives("any") == {pair(A, B), pair(A, C), pair(B, C)} | syn | cross


def test_certain_pairs_loss_ignores_pairs_that_may_be_one_person():
    """C's views moved onto A's change the loss when every other tracklet is a negative, and change nothing when
    only the tracklets in view together are (A and C never are); B, in view with A, still counts."""
    from reid_ray.train.data import from_arrow, to_arrow
    from reid_ray.train.losses import certain_pair_indices, certain_pairs_loss

    index = TrackletIndex.from_table(from_arrow(to_arrow(_mined_rows())))
    rows = np.concatenate([index.rows[t][:2] for t in range(4)])  # two views each of A, B, C, D
    tracklets, labels = index.row_tracklet[rows], torch.as_tensor(index.label[index.row_tracklet[rows]])
    a1, p, a2, n = certain_pair_indices(labels, tracklets, lambda a, b: index.may_be_negatives(a, b, "cooccurring"))
    assert len(a1) == 8 and all(labels[a1] == labels[p])  # 4 tracklets x 2 ordered view pairs
    assert {(int(tracklets[i]), int(tracklets[j])) for i, j in zip(a2, n)} == {(0, 1), (1, 0)}  # A-B only

    looks = torch.nn.functional.normalize(torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), dim=1)
    emb = looks.repeat_interleave(2, dim=0)  # both views of a tracklet alike: positives cost nothing
    moved = emb.clone()
    moved[4:6] = emb[0:2]  # C looks exactly like A
    loss_fn = make_circle_loss(LossConfig(m=0.25, gamma=32))
    for mode, changes in (("cooccurring", False), ("any", True)):
        rule = lambda a, b, mode=mode: index.may_be_negatives(a, b, mode)  # noqa: E731
        before, after = (certain_pairs_loss(loss_fn, e, labels, tracklets, rule).item() for e in (emb, moved))
        assert (abs(after - before) > 1e-3) == changes, (mode, before, after)
    # B is a certain negative: moving B onto A raises the loss even with "cooccurring"
    onto_b = emb.clone()
    onto_b[2:4] = emb[0:2]
    rule = lambda a, b: index.may_be_negatives(a, b, "cooccurring")  # noqa: E731
    assert certain_pairs_loss(loss_fn, onto_b, labels, tracklets, rule) > certain_pairs_loss(loss_fn, emb, labels, tracklets, rule)


def _certain_pairs_rank(rank: int, world: int, port: int, emb, labels, tracklets, rows_of, out) -> None:
    import torch.distributed as dist

    from reid_ray.train.data import from_arrow, to_arrow
    from reid_ray.train.losses import certain_pairs_loss

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        index = TrackletIndex.from_table(from_arrow(to_arrow(_mined_rows())))
        mine = rows_of[rank]
        loss = certain_pairs_loss(make_circle_loss(LossConfig(m=0.25, gamma=32)), emb[mine], labels[mine], tracklets[mine],
                                  lambda a, b: index.may_be_negatives(a, b, "cooccurring"))
        out[rank] = loss.item() / world  # the wrapper multiplies by world size for DDP's gradient mean
    finally:
        dist.destroy_process_group()


def test_certain_pairs_loss_under_two_gloo_workers_equals_one_process():
    """Pair indices address the gathered batch in PML's order (this rank first): each worker's loss equals the
    one-process loss over the whole batch. Rank 0 holds A and B, the one negative pair, rank 1 C and D: with
    the gathered rows in another order the indices would pair C with D and the losses would differ."""
    import socket

    import torch.multiprocessing as mp

    from reid_ray.train.data import from_arrow, to_arrow
    from reid_ray.train.losses import certain_pairs_loss

    index = TrackletIndex.from_table(from_arrow(to_arrow(_mined_rows())))
    rows = np.concatenate([index.rows[t][:2] for t in range(4)])  # A A B B C C D D
    tracklets, labels = index.row_tracklet[rows], torch.as_tensor(index.label[index.row_tracklet[rows]])
    emb = torch.nn.functional.normalize(torch.randn(8, 3, generator=torch.Generator().manual_seed(1)), dim=1)
    rule = lambda a, b: index.may_be_negatives(a, b, "cooccurring")  # noqa: E731
    whole = certain_pairs_loss(make_circle_loss(LossConfig(m=0.25, gamma=32)), emb, labels, tracklets, rule).item()
    rows_of = [np.array([0, 1, 2, 3]), np.array([4, 5, 6, 7])]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = mp.Manager().dict()
    mp.spawn(_certain_pairs_rank, args=(2, port, emb, labels, tracklets, rows_of, out), nprocs=2, join=True)
    assert out[0] == pytest.approx(whole, rel=1e-5) and out[1] == pytest.approx(whole, rel=1e-5)


def test_sampler_takes_hard_negatives_among_people_in_view_together():
    from reid_ray.train.data import from_arrow, to_arrow

    rows = []
    for t in range(6):  # one shot: t0-t2 in view together (frames 0-9), t3-t5 later and together (frames 50-59)
        rows += [{"video_id": "v0", "shot_id": "s0", "tracklet_id": f"t{t}", "identity": None, "frame": 50 * (t >= 3) + f,
                  "patches": np.ones((1, 3), np.float32)} for f in range(10)]
    index = TrackletIndex.from_table(from_arrow(to_arrow(rows)))
    cfg = SamplerConfig(P=2, K=2, same_shot_fraction=1.0, unlabelled_negatives="cooccurring")
    for seed in range(5):
        for r, _ in PKSampler(index, cfg, seed):
            a, b = index.row_tracklet[r[0]], index.row_tracklet[r[2]]
            assert (a >= 3) == (b >= 3), "the second tracklet must be in view with the anchor"


def test_market1501_names_and_ingest(tmp_path):
    assert parse_market1501_name("0001_c1s1_000151_01.jpg") == (1, 1, 1, 151)
    assert parse_market1501_name("-1_c3s2_012345_02.jpg") == (-1, 3, 2, 12345)
    assert parse_market1501_name("Thumbs.db") is None
    rng = np.random.default_rng(0)
    names = ["0001_c1s1_000151_01.jpg", "0001_c2s1_000301_01.jpg", "0002_c1s1_000176_02.jpg",
             "0000_c1s1_000001_00.jpg", "-1_c1s1_000002_00.jpg"]
    for n in names:
        cv2.imwrite(str(tmp_path / n), rng.integers(0, 255, (128, 64, 3), dtype=np.uint8))

    class FakeEmbedder:  # the Market ingest only needs the PatchEmbedder protocol
        dim = 5

        def patch_sets(self, frame, instances):
            assert instances.masks.all() and frame.shape == (128, 64, 3)
            return [np.full((3, 5), frame.mean(), np.float32)]

    t = read_samples(ingest_market1501(tmp_path, FakeEmbedder(), tmp_path / "out" / "m.parquet"))
    assert len(t) == 3 and sorted(set(t.identity)) == ["market1501/0001", "market1501/0002"]
    assert set(t.shot_id) == {"c1s1", "c2s1"} and t.patches[0].shape == (3, 5)


def test_build_from_synthetic_gt_tracklets(tmp_path):
    from reid_ray.train.data import build_from_synthetic

    path = build_from_synthetic(tmp_path / "syn.parquet", n_videos=2, seed=5, every_k=4, work_dir=tmp_path,
                                n_frames=24, width=320, height=180, n_people=3, cut_every_s=1.2)
    t = read_samples(path)
    assert len(t) > 10 and t.dim == 120 and all(len(p) >= 1 for p in t.patches)
    assert set(t.video_id) == {"synthetic_s5_000", "synthetic_s5_001"} and set(t.shot_id) == {"shot000", "shot001"}
    for v, tr, ident in zip(t.video_id, t.tracklet_id, t.identity):  # identity = video/GT id of the tracklet
        assert ident == f"{v}/{tr.split('_')[0][2:]}"
    assert all(f % 4 == 0 for f in t.frame)


def test_synthetic_rows_take_patches_from_the_mask_the_job_will_use(tmp_path):
    """A head for a box-only detector must be trained on box-made masks: the job never sees exact ones."""
    from reid_ray.train.data import synthetic_tracklet_rows
    from reid_ray.video.synthetic import generate_corpus

    class MaskRecorder:  # a real PatchEmbedder would hide which pixels it was given; this one records them
        dim = 2

        def __init__(self):
            self.seen = []

        def patch_sets(self, frame, instances):
            self.seen.append(instances)
            return [np.zeros((1, 2), np.float32) for _ in range(len(instances))]

    video = next(iter(generate_corpus(tmp_path, n_videos=1, seed=3, n_frames=12, width=320, height=180, n_people=3)))
    by_mode = {}
    for mode in ("exact", "core"):
        rec = MaskRecorder()
        rows = synthetic_tracklet_rows(video, rec, every_k=4, mask=mode)
        assert len(rows) == sum(len(i) for i in rec.seen) > 0
        by_mode[mode] = rec.seen
    for exact, core in zip(by_mode["exact"], by_mode["core"], strict=True):
        np.testing.assert_array_equal(exact.boxes, core.boxes)  # the same GT views, only the pixels differ
        np.testing.assert_array_equal(core.masks, Instances(core.boxes, core.scores, core.categories).core_masks(core.masks.shape[1:]))
    exact_masks = np.concatenate([i.masks for i in by_mode["exact"]])
    rectangles = [m.sum() == (m.any(1).sum() * m.any(0).sum()) for m in exact_masks]
    assert not all(rectangles)  # rendered people are not boxes: "exact" kept the GT masks


def test_retrieval_metrics_by_hand():
    from reid_ray.train.evaluate import retrieval_metrics

    # Query 0 (shot 0): gallery in shot 1 ranked [2 (wrong), 3 (right)] -> AP 0.5, rank-1 miss, rank-5 hit.
    emb = np.array([[1, 0], [0, 1], [0.9, 0.1], [0.8, 0.2]], np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ident = np.array([0, 1, 2, 0])
    shot = np.array([0, 0, 1, 1])
    m = retrieval_metrics(emb, ident, shot)
    # queries with a true match in another shot: 0 (AP 1/2) and 3 (gallery [0 right, 1 wrong]: AP 1)
    assert m["n_queries"] == 2 and m["mAP"] == pytest.approx(0.75) and m["rank1"] == 0.5 and m["rank5"] == 1.0


def test_half_split_makes_each_tracklet_query_its_other_half():
    from reid_ray.train.data import from_arrow, to_arrow
    from reid_ray.train.evaluate import half_split

    rows = _toy_table(n_videos=1, shots=2, people=3, frames=5)
    for r in rows:
        r["identity"] = None  # unlabelled, as mined tracklets are
    rows[0:5] = rows[0:3]  # video 0, shot 0, person 0: only 3 frames, too short to split
    t = half_split(from_arrow(to_arrow(rows)), min_frames=4)
    assert len(t) == len(rows) - 3  # the short tracklet is left out, nothing else
    halves = {}
    for shot, ident, frame in zip(t.shot_id, t.identity, t.frame):
        halves.setdefault(ident, {}).setdefault(shot, []).append(frame)
    assert len(halves) == 5 and all(len(h) == 2 for h in halves.values())
    for h in halves.values():
        (a, fa), (b, fb) = sorted(h.items())
        assert a.endswith("/a") and b.endswith("/b") and max(fa) < min(fb)  # first half, then second


def test_cooccurring_gallery_holds_only_certain_negatives():
    """Video v0: A (frames 0-9) and B (5-14) are in view together; C (20-29) is A's person coming back; video v1:
    D (0-9). Only the other half and the co-occurring tracklet are in a half's gallery, so a head that knows C is
    A scores 1 there and loses on the all-tracklets gallery, which counts C as a negative."""
    from reid_ray.models.heads import MeanPoolHead
    from reid_ray.train.data import from_arrow, to_arrow
    from reid_ray.train.evaluate import cooccurring_gallery, evaluate_heads, half_split
    from reid_ray.train.sampler import TrackletIndex

    look = {"A": [1.0, 0.0], "B": [0.0, 1.0], "C": [1.0, 0.0], "D": [0.5, 0.5]}  # C is A's person
    spans = {"A": ("v0", range(0, 10)), "B": ("v0", range(5, 15)), "C": ("v0", range(20, 30)), "D": ("v1", range(0, 10))}
    rows = [{"video_id": v, "shot_id": "s0", "tracklet_id": t, "identity": None, "frame": f,
             "patches": np.array([look[t]], np.float32)} for t, (v, frames) in spans.items() for f in frames]
    halves = half_split(from_arrow(to_arrow(rows)))
    index = TrackletIndex.from_table(halves)
    gallery = cooccurring_gallery(halves, index)
    name = [f"{halves.identity[r[0]].split('/')[-1]}{str(halves.shot_id[r[0]])[-1]}" for r in index.rows]
    held = {name[q]: sorted(name[j] for j in np.flatnonzero(gallery[q])) for q in range(len(name))}
    assert held == {"Aa": ["Ab", "Ba", "Bb"], "Ab": ["Aa", "Ba", "Bb"], "Ba": ["Aa", "Ab", "Bb"], "Bb": ["Aa", "Ab", "Ba"],
                    "Ca": ["Cb"], "Cb": ["Ca"], "Da": ["Db"], "Db": ["Da"]}
    cooc = evaluate_heads(halves, {"mean": MeanPoolHead()}, gallery="cooccurring")["mean"]
    every = evaluate_heads(halves, {"mean": MeanPoolHead()})["mean"]
    # C and D have no co-occurring negative, so AP would be 1 whatever the head: they are not queries.
    assert cooc["n_queries"] == 4 and cooc["mAP"] == 1.0 and cooc["mean_gallery"] == 3
    assert every["n_queries"] == 8 and every["mAP"] < 1.0  # C's halves tie with A's other half
    with pytest.raises(ValueError, match="half_split"):
        cooccurring_gallery(from_arrow(to_arrow(rows)))


# Mined (unlabelled) rows: tests/test_build_training_set.py, through the job that makes them.


# ------------------------------------------------------------------------------------------ Ray Train


@pytest.mark.ray
def test_two_worker_ddp_training_and_resume(ray_local, tmp_path):
    from reid_ray.train.evaluate import evaluate_heads
    from reid_ray.train.trainer import HEAD_FILE, read_history, run_training

    data = write_samples(tmp_path / "train.parquet", _toy_table(n_videos=2, shots=2, people=4, frames=6, noise=1.0))
    cfg = TrainConfig.model_validate({
        "epochs": 3, "seed": 0,
        "head": {"kind": "transformer", "in_dim": D, "out_dim": 8, "d_model": 16, "layers": 1, "heads": 2, "dropout": 0.0},
        "loss": {"m": 0.25, "gamma": 32},
        "sampler": {"P": 4, "K": 2, "batches_per_epoch": 6},
        "optimizer": {"lr": 3e-3, "cosine": False},
        "scaling": {"num_workers": 2},
    })
    result = run_training(cfg, str(data), str(tmp_path / "runs"), name="tiny")
    assert result.error is None
    with result.checkpoint.as_directory() as d:
        hist = read_history(d)
        head = TrainedHead(f"{d}/{HEAD_FILE}")
    assert [h["epoch"] for h in hist] == [0, 1, 2] and hist[0]["workers"] == 2
    assert hist[-1]["loss"] < hist[0]["loss"] and all(h["nonfinite_skips"] == 0 for h in hist)
    table = read_samples(data)
    out = head.pool(table.patches[:5])
    assert out.shape == (5, 8) and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    metrics = evaluate_heads(table, {"trained": head})
    assert metrics["trained"]["n_queries"] == 16

    # Same storage path and name, more epochs: resumes at epoch 3 from the latest checkpoint.
    resumed = run_training(cfg.model_copy(update={"epochs": 4}), str(data), str(tmp_path / "runs"), name="tiny")
    assert resumed.error is None and resumed.metrics["epoch"] == 3
    with resumed.checkpoint.as_directory() as d:
        assert [h["epoch"] for h in read_history(d)] == [0, 1, 2, 3]
