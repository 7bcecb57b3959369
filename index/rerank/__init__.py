"""The learned ranker that re-orders a question's fused top passages, and the features it reads."""
