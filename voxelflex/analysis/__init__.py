"""Predict, evaluate and plot: everything after training.

- :func:`voxelflex.analysis.predict.predict` writes a predictions table (CSV or Parquet) from a
  checkpoint and an index.
- :func:`voxelflex.analysis.evaluate.evaluate` turns a predictions file into
  ``evaluation_metrics_<split>.json`` (metrics, stratification, baselines, permutation
  importance); :func:`format_summary` prints it as a short table.
- :func:`plot` writes the plots of a run, each with the CSV of its data.

The submodules ``predict`` and ``evaluate`` keep their names (their functions are not re-exported
here, which would hide the modules).
"""

from voxelflex.analysis.evaluate import EvaluationReport, format_summary
from voxelflex.analysis.plots import plot
from voxelflex.analysis.predict import PredictReport
from voxelflex.analysis.predictions import PredictionsMeta, read_predictions, write_predictions
from voxelflex.analysis.temperatures import parse_sweep, resolve_temperatures

__all__ = [
    "EvaluationReport",
    "PredictReport",
    "PredictionsMeta",
    "format_summary",
    "parse_sweep",
    "plot",
    "read_predictions",
    "resolve_temperatures",
    "write_predictions",
]
