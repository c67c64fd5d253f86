"""MovieLens, the paper's instance of the general recipe: the release (`release`, `download`), the entity tables
(`tables`, `facts`), behavioural vectors and movie texts (`behavioural`), genre and tag labels (`labels`), the
paper's tasks (`tasks`), target writers (`writers/`), rows (`rows`) and the corpus build (`build`). What it writes is
the corpus format of `modeling_elm.data.corpus`, which any other source writes too."""
