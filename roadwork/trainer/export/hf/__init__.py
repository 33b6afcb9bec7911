"""Files copied verbatim into an exported model repository, loaded there with `trust_remote_code=True`.

They import only torch, numpy, Pillow and transformers (never `roadwork`), so a miner needs nothing of ours.
`roadwork_networks.py` also imports `roadwork_multiview.py` and `roadwork_backbone_net.py`, which the export
writes beside it from roadwork's own source (`roadwork.trainer.export.code`).
"""

from pathlib import Path

REMOTE_CODE_FILES = (
    "configuration_roadwork.py",
    "modeling_roadwork.py",
    "roadwork_networks.py",
    "image_processing_roadwork.py",
)
DETECTOR_FILE = "streetvision_detector.py"
HERE = Path(__file__).parent
