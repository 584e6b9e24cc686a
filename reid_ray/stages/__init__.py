"""The Ray Data stages: thin ``pipeline.RowStage`` callables (set up once per actor, process one row) that call the
library (``reid_ray/pairs/``, ``video/``, ``models/``, ``tracking/``) and write their outputs. A stage never
imports another stage; what two stages share lives in the library."""
