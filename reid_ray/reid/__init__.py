"""The long-video re-identification method, one step per file:

- ``tracker.py``: a video -> shots (TransNetV2), per-frame person instances with one embedding each, tracklets
  (``VideoTracker.track`` -> ``TrackedVideo``);
- ``identities.py``: tracklets -> tracklet distances, clustering that never joins tracklets sharing a frame, boxes
  filled into short gaps (``assign_identities`` -> ``Identities``);
- ``outputs.py``: what a video's folder holds (tracklets.parquet, the identity files, figures, videos, report.json).

``stages/reid_video.py`` is the Ray Data actor over them; ``train/data.py`` mines training views from the tracker.
"""
