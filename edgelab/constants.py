"""Liveness, lease and transfer constants shared by coordinator and agent (one place to tune)."""

from __future__ import annotations  # agents on Python 3.8 import this module

HEARTBEAT_INTERVAL_S = 5.0
# An agent is "stale" after missing this many heartbeats and "offline" after OFFLINE_AFTER.
STALE_AFTER_HEARTBEATS = 3
OFFLINE_AFTER_HEARTBEATS = 12

LEASE_DURATION_S = 60.0
# LeaseJob long-poll: how long an idle agent asks the coordinator to hold its lease call, and the most
# the coordinator holds one (a job queued for the agent answers it at once).
LEASE_WAIT_S = 20.0
MAX_LEASE_WAIT_S = 60.0
# A job whose lease expired this many times is failed with a timeout instead of re-queued.
MAX_ATTEMPTS = 3

ARTIFACT_CHUNK_BYTES = 1 << 20
GRPC_MAX_MESSAGE_BYTES = 8 << 20

# Percentiles are reported only from enough samples to mean something (MLPerf LoadGen's minimums).
MIN_SAMPLES_P90 = 64
MIN_SAMPLES_P95 = 128
MIN_SAMPLES_P99 = 662

DEFAULT_PORT = 50051

# JobSpec label holding the FP32 host model's accuracy on the shipped test set; the agent reports
# its own accuracy's drop against it.
REFERENCE_ACCURACY_LABEL = "reference_accuracy"

# Artifact formats each backend loads: the agents' backends take their `formats` from here, and the
# dashboard reads it to refuse a job whose model the chosen backend cannot load.
BACKEND_FORMATS: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("onnx",),
    "tensorrt": ("onnx",),
    "trtexec": ("onnx",),
    "tflite": ("tflite",),
    "tensorflow": ("savedmodel.zip",),
}
