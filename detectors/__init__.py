"""The vectorized anomaly core: numpy state arrays in, condition changes out.

Every detector follows :class:`~detectors.base.Detector`: ``update(batch)`` on new
samples and ``sweep(now)`` on the watermark clock, both returning
:class:`~detectors.base.ConditionChanges`.  No I/O, no asyncio, deterministic.
"""

from detectors.base import (
    QUALITY_CODES,
    QUALITY_NORMAL,
    ConditionChanges,
    Detector,
    SampleBatch,
)
from detectors.silence import SilenceDetector
from detectors.threshold import ThresholdDetector

__all__ = [
    "QUALITY_CODES",
    "QUALITY_NORMAL",
    "ConditionChanges",
    "Detector",
    "SampleBatch",
    "SilenceDetector",
    "ThresholdDetector",
]
