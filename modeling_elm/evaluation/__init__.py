"""Evaluation: does the model read its vectors (against controls), and how well; metrics, curves, report, judge."""
