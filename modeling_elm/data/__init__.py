"""Data: corpora of (vectors, prompt, target) rows for any (id, vector, text) source, and rows -> model inputs.

`vector_store` is the one corpus format (vector tables + rows naming ids), `byo` builds it from your files,
`corpus` + `movielens/` + `writers/` build it from MovieLens (the paper's recipe), `tokenization` turns rows into
token ids and vector-table indices for training and scoring.
"""
