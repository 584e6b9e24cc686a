"""The one instance record: rescaling between a model's frame and the source frame."""
import numpy as np
import pytest

from reid_ray.records import Instances, mask_to_rle, rle_to_mask


def test_rescaled_scales_boxes_and_keypoints_and_resizes_masks():
    mask = np.zeros((1, 10, 20), bool)
    mask[0, 2:8, 4:6] = True  # a thin body in a wider box
    kp = np.full((1, 5, 2), np.nan, np.float32)
    kp[0, 0] = (5, 3)
    rle = np.empty(1, object)
    rle[:] = [mask_to_rle(mask[0])["counts"]]
    inst = Instances(np.array([[4, 2, 10, 8]], np.float32), np.array([0.9], np.float32), np.array(["person"], object),
                     masks=mask, keypoints=kp, extra={"mask_rle": rle, "mask_size": np.array([[10, 20]])})
    big = inst.rescaled(3.0, (30, 60))
    np.testing.assert_array_equal(big.boxes, [[12, 6, 30, 24]])
    np.testing.assert_array_equal(big.keypoints[0, 0], [15, 9])
    assert big.masks.shape == (1, 30, 60) and big.masks.sum() == 9 * mask.sum()
    np.testing.assert_array_equal(np.argwhere(big.masks[0]).min(0), [6, 12])  # the body, not its box
    np.testing.assert_array_equal(np.argwhere(big.masks[0]).max(0), [23, 17])
    # an RLE mask kept beside the record carries its own size: untouched
    assert (rle_to_mask({"size": [10, 20], "counts": big.extra["mask_rle"][0]}) == mask[0]).all()
    with pytest.raises(ValueError, match="frame_shape"):
        inst.rescaled(3.0)  # masks are never dropped silently
    assert Instances.empty().rescaled(2.0).boxes.shape == (0, 4)
