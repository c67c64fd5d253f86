"""What the tests share: tiny models and corpora (`elm`), MovieLens releases on disk (`movielens`), the Hub
offline (`hub`)."""
