"""Data: corpora of (vectors, prompt, target) rows for any (id, vector, text) source, and rows -> model inputs.

`corpus` is the one corpus format (vector tables of `vector_table` + rows naming ids) and opens a built one; `byo`
builds it from your files, `wordnet` writes WordNet as such files, and `movielens/` builds it from MovieLens (the
paper's recipe). Any corpus: `embeddings` (the sentence encoder), `concepts` (directions to move vectors along),
`tokenization` (rows -> token ids and vector-table indices for training and scoring).
"""
