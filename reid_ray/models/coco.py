"""COCO class names (the 80 detection classes, in the order YOLOX and YOLOv8 emit them)."""
COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)


def class_to_category(categories: dict[str, list[str]]) -> dict[int, str]:
    """COCO class index -> configured category; unknown class names are a config error, said here."""
    out: dict[int, str] = {}
    for category, names in categories.items():
        for name in names:
            if name not in COCO_CLASSES:
                raise ValueError(f"segmenter.categories.{category}: '{name}' is not a COCO class name")
            out[COCO_CLASSES.index(name)] = category
    return out
