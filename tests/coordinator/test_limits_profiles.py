"""The door's bounds on per-operator profiles (issue 17): finite, non-negative, at most 20 operators."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest

from coordinator.limits import MAX_PROFILE_OPS, Invalid, TooLarge, check_result
from edgelab.domain import BenchmarkResult, LatencyStats, OperatorProfile, OperatorTime
from edgelab.serde import to_proto
from edgelab.v1 import common_pb2

OP = OperatorTime("conv1", "Conv", 0.5, 50.0)
PROFILE = OperatorProfile(batch_size=4, source="onnxruntime session profiling", total_ms=1.0, operators=2, ops=[OP])
LATENCY = LatencyStats(4, 10, 1.0, 1.0, 1.0, 1.0, 0.0, 4000.0, 1.0, 0.1, 5, 0.01, "end-to-end")


def _check(*profiles: OperatorProfile) -> None:
    result = BenchmarkResult(load_s=0.1, latency=[LATENCY], profiles=list(profiles))
    check_result(result, to_proto(result, common_pb2.BenchmarkResult()))


def test_a_profile_within_bounds_is_accepted() -> None:
    _check(PROFILE, dataclasses.replace(PROFILE, ops=[OP] * MAX_PROFILE_OPS))


@pytest.mark.parametrize(
    ("profile", "error", "field"),
    [
        (dataclasses.replace(PROFILE, ops=[dataclasses.replace(OP, time_ms=math.nan)]), Invalid, "ops[0].time_ms"),
        (dataclasses.replace(PROFILE, ops=[dataclasses.replace(OP, time_ms=-1.0)]), Invalid, "ops[0].time_ms"),
        (dataclasses.replace(PROFILE, ops=[dataclasses.replace(OP, percent=math.inf)]), Invalid, "ops[0].percent"),
        (dataclasses.replace(PROFILE, total_ms=math.nan), Invalid, "total_ms"),
        (dataclasses.replace(PROFILE, batch_size=0), Invalid, "batch_size"),
        (dataclasses.replace(PROFILE, ops=[OP] * (MAX_PROFILE_OPS + 1)), TooLarge, "ops"),
        (dataclasses.replace(PROFILE, ops=[dataclasses.replace(OP, name="x" * 10_000)]), TooLarge, "ops[0].name"),
        (dataclasses.replace(PROFILE, ops=[dataclasses.replace(OP, name="")]), Invalid, "ops[0].name"),
    ],
    ids=["nan-time", "negative-time", "inf-percent", "nan-total", "batch-0", "21-ops", "long-name", "no-name"],
)
def test_a_profile_out_of_bounds_is_refused_naming_the_field(
    profile: OperatorProfile, error: type[Exception], field: str
) -> None:
    with pytest.raises(error, match=re.escape(f"result.profiles[1].{field}:")):
        _check(PROFILE, profile)
