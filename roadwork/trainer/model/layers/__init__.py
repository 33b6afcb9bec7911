"""Building blocks of the multi-view roadwork model, one concept per file (see DESIGN.md, "The model")."""

from roadwork.trainer.model.layers.gafm import GAFM, ViewAttention
from roadwork.trainer.model.layers.gated_attention import GatedAttentionBlock, GatedAttentionEncoder, GatedSelfAttention
from roadwork.trainer.model.layers.heads import (
    ClassifierHead,
    SegmentationHead,
    VisionMetadataFusion,
    WeatherHead,
)
from roadwork.trainer.model.layers.metadata_encoder import (
    TEXT_DIM,
    GPSEncoding,
    MetadataEncoder,
    MiniLMTextEncoder,
    embed_texts,
)
from roadwork.trainer.model.layers.moe import MixtureOfExperts, load_balancing_loss, moe_aux_loss
from roadwork.trainer.model.layers.norms import RMSNorm
from roadwork.trainer.model.layers.pruning import (
    PostBackbonePruning,
    PreBackbonePruning,
    ThumbnailScorer,
    straight_through_topk,
)
from roadwork.trainer.model.layers.pyramid import FeaturePyramid
from roadwork.trainer.model.layers.rope import NoRotaryEmbedding, RotaryEmbedding
from roadwork.trainer.model.layers.swiglu import SwiGLU

__all__ = [
    "GAFM",
    "TEXT_DIM",
    "ClassifierHead",
    "FeaturePyramid",
    "GPSEncoding",
    "GatedAttentionBlock",
    "GatedAttentionEncoder",
    "GatedSelfAttention",
    "MetadataEncoder",
    "MiniLMTextEncoder",
    "MixtureOfExperts",
    "NoRotaryEmbedding",
    "PostBackbonePruning",
    "PreBackbonePruning",
    "RMSNorm",
    "RotaryEmbedding",
    "SegmentationHead",
    "SwiGLU",
    "ThumbnailScorer",
    "ViewAttention",
    "VisionMetadataFusion",
    "WeatherHead",
    "embed_texts",
    "load_balancing_loss",
    "moe_aux_loss",
    "straight_through_topk",
]
