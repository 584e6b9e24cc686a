"""reid-ray: identity data from licensed video on Ray."""
from reid_ray.config import PairsJobConfig, load_config
from reid_ray.records import Instances

__all__ = ["Instances", "PairsJobConfig", "load_config"]
__version__ = "0.1.0"
