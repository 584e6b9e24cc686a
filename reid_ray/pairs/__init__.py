"""The pair job's own logic, free of Ray: which clips of a video to pair (``clip_pairs``), which frames of a clip pair
to decode and how they travel between stages (``frames``), which instances are good enough to keep (``quality``),
and how tracks of two clips become proposed, routed and certain pairs (``proposal``). The Ray Data stages
(``reid_ray/stages/``) call these."""
