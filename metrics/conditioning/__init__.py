"""Conditioning metrics: does a conditional generator use its condition? Each with chance, null, p, effect."""

from .accuracy import accuracy_from_predictions, conditional_accuracy
from .cas import classification_accuracy_score
from .classifier import ConditionClassifier, ConditionClusters
from .frechet import (
    JointFrechetResult,
    cfid_from_stats,
    conditional_frechet_distance,
    frechet_joint_distance,
)
from .joint_tests import joint_conditioning_tests
from .purity import cluster_purity
from .retrieval import condition_retrieval
from .sensitivity import condition_sensitivity
from .stats import TestResult, holm, permutation_p, wilson_interval
from .verdict import RULE, conditioning_verdict

__all__ = [
    "RULE",
    "ConditionClassifier",
    "ConditionClusters",
    "JointFrechetResult",
    "TestResult",
    "accuracy_from_predictions",
    "cfid_from_stats",
    "classification_accuracy_score",
    "cluster_purity",
    "condition_retrieval",
    "condition_sensitivity",
    "conditional_frechet_distance",
    "conditional_accuracy",
    "conditioning_verdict",
    "frechet_joint_distance",
    "holm",
    "joint_conditioning_tests",
    "permutation_p",
    "wilson_interval",
]
