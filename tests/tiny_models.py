"""Tiny random-weight checkpoints of the real model classes, saved to a local directory.

Test helpers, not library code. Each builder writes a directory with ``save_pretrained`` so the library loads it
through ``from_pretrained(local_dir)`` exactly as it would a real checkpoint. Random weights exercise code paths
(shapes, dtypes, plumbing through the transformers API), never quality.
"""
from __future__ import annotations

from pathlib import Path

# SAM3 at 224 px: patch 14 -> a 16 x 16 grid. The FPN levels are 4x, 2x, 1x the grid; the tracker's low-res
# masks are 4x the grid; the memory-attention RoPE runs on the grid.
SAM3_IMAGE_SIZE = 224
SAM3_PATCH = 14
SAM3_GRID = SAM3_IMAGE_SIZE // SAM3_PATCH
SAM3_WIDTH = 128  # one width for FPN, DETR, geometry encoder, mask decoder and tracker (multiple of 64, > 64)


def _tiny_clip_tokenizer():
    """A CLIP BPE tokenizer built in memory: byte-level alphabet (each byte's end-of-word form too), no merges.

    Every prompt tokenises (character by character); no vocabulary file from any hub is needed.
    """
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = ["<|startoftext|>", "<|endoftext|>"] + alphabet + [c + "</w>" for c in alphabet]
    vocab = {t: i for i, t in enumerate(tokens)}
    merges: list[tuple[str, str]] = []
    return CLIPTokenizer(vocab=vocab, merges=merges), len(vocab)


def build_tiny_sam3(tmp_dir: str | Path) -> str:
    """Tiny random ``Sam3VideoModel`` + ``Sam3VideoProcessor`` saved to ``tmp_dir``; returns the directory."""
    import torch
    from transformers import (
        Sam2VideoVideoProcessor,
        Sam3ImageProcessor,
        Sam3VideoConfig,
        Sam3VideoModel,
        Sam3VideoProcessor,
    )

    out = Path(tmp_dir)
    out.mkdir(parents=True, exist_ok=True)
    size, grid, width = SAM3_IMAGE_SIZE, SAM3_GRID, SAM3_WIDTH
    tokenizer, vocab_size = _tiny_clip_tokenizer()

    backbone = dict(
        model_type="sam3_vit_model",
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=size,
        patch_size=SAM3_PATCH,
        pretrain_image_size=size,
        window_size=8,
        global_attn_indexes=[1],
    )
    feature_sizes = [[4 * grid, 4 * grid], [2 * grid, 2 * grid], [grid, grid]]
    vision = dict(backbone_config=backbone, fpn_hidden_size=width, backbone_feature_sizes=feature_sizes)
    detector = dict(
        vision_config=vision,
        text_config=dict(
            model_type="clip_text_model",
            vocab_size=vocab_size,
            hidden_size=64,
            intermediate_size=128,
            projection_dim=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=32,  # the processor pads prompts to 32 tokens
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        geometry_encoder_config=dict(hidden_size=width, num_layers=1, num_attention_heads=2, intermediate_size=128),
        detr_encoder_config=dict(hidden_size=width, num_layers=1, num_attention_heads=2, intermediate_size=128),
        detr_decoder_config=dict(
            hidden_size=width, num_layers=1, num_queries=8, num_attention_heads=2, intermediate_size=128
        ),
        mask_decoder_config=dict(hidden_size=width, num_attention_heads=2),
    )
    tracker = dict(
        vision_config=vision,
        prompt_encoder_config=dict(hidden_size=width, image_size=size, patch_size=SAM3_PATCH),
        mask_decoder_config=dict(hidden_size=width, mlp_dim=128, num_attention_heads=2, iou_head_hidden_dim=width),
        memory_attention_hidden_size=width,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=128,
        memory_attention_rope_feat_sizes=[grid, grid],
        memory_encoder_hidden_size=width,
        memory_encoder_output_channels=64,
        mask_downsampler_embed_dim=width,
        memory_fuser_embed_dim=width,
        memory_fuser_intermediate_dim=128,
        num_maskmem=3,
        image_size=size,
    )
    config = Sam3VideoConfig(
        detector_config=detector,
        tracker_config=tracker,
        low_res_mask_size=4 * grid,
        # thresholds at 0 so that random weights still return (and keep) objects
        score_threshold_detection=0.0,
        new_det_thresh=0.0,
        det_nms_thresh=0.5,
        hotstart_delay=0,
        fill_hole_area=0,
    )
    # the tracker's own __post_init__ resets image_size to 1008; set it again now that the tree is built
    config.image_size = size
    torch.manual_seed(0)
    model = Sam3VideoModel(config).eval()
    model.save_pretrained(out)

    image_size = {"height": size, "width": size}
    processor = Sam3VideoProcessor(
        image_processor=Sam3ImageProcessor(size=image_size, mask_size={"height": 4 * grid, "width": 4 * grid}),
        video_processor=Sam2VideoVideoProcessor(size=image_size),
        tokenizer=tokenizer,
        target_size=size,
    )
    processor.save_pretrained(out)
    return str(out)


def _save_vit(config, out: Path, model_cls) -> str:
    import torch

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model_cls(config).eval().save_pretrained(out)
    return str(out)


def build_tiny_dinov2(tmp_dir: str | Path) -> str:
    """Tiny random ``Dinov2Model`` (patch 14, 224, hidden 48, 2 layers) + its image processor."""
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    out = Path(tmp_dir)
    cfg = Dinov2Config(
        image_size=224, patch_size=14, hidden_size=48, num_hidden_layers=2, num_attention_heads=3, mlp_ratio=2
    )
    _save_vit(cfg, out, Dinov2Model)
    BitImageProcessor(
        size={"shortest_edge": 256},
        crop_size={"height": 224, "width": 224},
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(out)
    return str(out)


def build_tiny_dinov3(tmp_dir: str | Path) -> str:
    """Tiny random ``DINOv3ViTModel`` (patch 16, 4 register tokens, hidden 48, 2 layers) + its image processor."""
    from transformers import DINOv3ViTConfig, DINOv3ViTImageProcessor, DINOv3ViTModel

    out = Path(tmp_dir)
    cfg = DINOv3ViTConfig(
        image_size=224,
        patch_size=16,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=3,
        num_register_tokens=4,
    )
    _save_vit(cfg, out, DINOv3ViTModel)
    DINOv3ViTImageProcessor(size={"height": 224, "width": 224}).save_pretrained(out)
    return str(out)
