"""OSNet x0.25 (MSMT17 weights from ../shared/models) as the long-video job's patch embedder."""
import numpy as np
import pytest
import torch

from _paths import require_shared
from loopback_http import LoopbackServer
from reid_ray.models.heads import MeanPoolHead
from reid_ray.records import Instances
from reid_ray.video.synthetic import SyntheticSpec, render


@pytest.fixture(scope="module")
def embedder():
    from reid_ray.models.osnet import OSNetPatchEmbedder, resolve_weights

    return OSNetPatchEmbedder(resolve_weights(None, require_shared("models")))


def test_weights_are_checked_and_missing_ones_say_where_to_put_them(tmp_path):
    from reid_ray.models.download import DownloadError
    from reid_ray.models.osnet import resolve_weights

    assert resolve_weights(None, require_shared("models")).name == "osnet_x0_25_msmt17.pth"
    (tmp_path / "osnet_x0_25_msmt17.pth").write_bytes(b"not weights")
    with pytest.raises(DownloadError, match="osnet_x0_25_msmt17.pth"):
        resolve_weights(None, tmp_path, url=None)  # downloads off
    with pytest.raises(FileNotFoundError, match="embedder.model"):
        resolve_weights(str(tmp_path / "nope.pth"), tmp_path)


def test_a_missing_file_is_downloaded_and_verified_against_the_pinned_checksum(tmp_path):
    """The official-download path with the file served on 127.0.0.1 (never the internet): the ../shared copy is
    accepted and loads; the same bytes with one flipped are refused and leave nothing behind."""
    from reid_ray.models.download import ChecksumError, sha256_of
    from reid_ray.models.osnet import OFFICIAL_URL, WEIGHTS_FILE, WEIGHTS_SHA256, load_osnet, resolve_weights

    assert OFFICIAL_URL.startswith("https://drive.google.com/") and resolve_weights.__defaults__ == (OFFICIAL_URL,)
    shared = require_shared(f"models/{WEIGHTS_FILE}")
    good = shared.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    with LoopbackServer({"/osnet.pth": good, "/corrupt.pth": bytes(bad)}) as server:
        got = resolve_weights(None, tmp_path / "fresh", url=server.url("/osnet.pth"))
        assert got == tmp_path / "fresh" / WEIGHTS_FILE and sha256_of(got) == WEIGHTS_SHA256
        assert load_osnet(got).classifier.out_features == 1041
        assert resolve_weights(None, tmp_path / "fresh", url=server.url("/osnet.pth")) == got  # reused, not fetched
        with pytest.raises(ChecksumError) as err:
            resolve_weights(None, tmp_path / "tampered", url=server.url("/corrupt.pth"))
        assert server.requests == ["/osnet.pth", "/corrupt.pth"]
    msg = str(err.value)
    assert "checksum mismatch" in msg and WEIGHTS_SHA256 in msg and "/corrupt.pth" in msg and "discarded" in msg
    assert list((tmp_path / "tampered").iterdir()) == []


def test_mean_of_cells_is_the_networks_own_embedding(embedder):
    """The folded embedding layer is affine, so pooling cells then ReLU equals torchreid's forward exactly."""
    crops = np.random.default_rng(0).normal(size=(2, 3, 256, 128)).astype(np.float32)
    with torch.inference_mode():
        reference = embedder.model(torch.from_numpy(crops)).numpy()
    pooled = np.maximum(embedder.feature_maps(crops).mean((2, 3)), 0)
    assert np.abs(pooled - reference).max() < 1e-4 * np.abs(reference).max()


def test_same_person_views_are_closer_than_other_people(embedder):
    """Real weights on rendered people with exact masks: across frames of one shot, views of one identity
    must be more alike than views of two (ROC AUC over all pairs of clean views)."""
    from sklearn.metrics import roc_auc_score

    spec = SyntheticSpec(video_id="osnet", seed=3, n_frames=60, n_people=4, occluders=False, exits_and_reentries=False)
    vecs, ids = [], []
    for k, fr in enumerate(render(spec)):
        if k % 4:
            continue
        rows = [r for r in fr.rows if r.visibility > 0.9]
        if not rows:
            continue
        inst = Instances.from_arrays([r.visible_box for r in rows], [1.0] * len(rows), ["person"] * len(rows))
        inst = inst.with_masks(fr.image.shape[:2], "core")
        vecs.append(MeanPoolHead().pool(embedder.patch_sets(np.ascontiguousarray(fr.image[:, :, ::-1]), inst)))
        ids += [r.id for r in rows]
    v, ids = np.concatenate(vecs), np.array(ids)
    iu = np.triu_indices(len(ids), 1)
    same = (ids[:, None] == ids[None, :])[iu]
    auc = roc_auc_score(same, (v @ v.T)[iu])
    print(f"OSNet same-vs-different AUC {auc:.3f} over {len(ids)} views")
    assert len(np.unique(ids)) >= 3 and auc > 0.9, auc


def test_patch_maps_picture_of_attention_and_pca(embedder, tmp_path):
    """The ablation's picture: crop, patch PCA and one attention map per head, for rendered people (random head
    weights here: the picture's mechanics, not what a trained head looks at)."""
    import cv2

    from reid_ray.models.set_heads import TrainedHead, build_head, save_head
    from reid_ray.records import rle_to_mask
    from reid_ray.viz.patch_maps import plot_patch_maps

    spec = {"kind": "transformer", "in_dim": embedder.dim, "out_dim": 16, "d_model": 32, "layers": 1, "heads": 2}
    head = TrainedHead(save_head(tmp_path / "h.pt", build_head(spec), spec))
    fr = next(f for f in render(SyntheticSpec(video_id="pic", seed=3, n_frames=5, n_people=2, occluders=False)) if f.rows)
    rows = fr.rows[:2]
    frames = [np.ascontiguousarray(fr.image[:, :, ::-1])] * len(rows)
    insts = [Instances.from_arrays([r.visible_box], [1.0], ["person"], masks=rle_to_mask(r.rle)[None]) for r in rows]
    path = plot_patch_maps(frames, insts, embedder, {"transformer": head}, tmp_path / "maps.png", "test")
    img = cv2.imread(str(path))
    assert img is not None and img.shape[0] > 200 * len(rows) and img.std() > 10
