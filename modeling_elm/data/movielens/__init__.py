"""MovieLens, the paper's instance of the general recipe: releases, entity tables, facts, semantic and behavioural
vectors."""
