"""Headers, quotes and signatures are stripped before near-duplicates are compared."""

from __future__ import annotations

import numpy as np

from studio.boilerplate import strip_boilerplate
from studio.checks.duplicates import near_duplicate_groups
from studio.checks.neighbours import knn_graph

HEADER = ("From: bob@cs.example.edu (Bob Smith)\nSubject: Re: Which monitor to buy?\n"
          "Organization: Example University\nLines: 14\n\n")
QUOTE = "In article <1993Apr5.1234@example.edu> alice@example.edu writes:\n> Is the 17 inch one worth it?\n>\n"


def test_headers_quotes_attributions_and_signatures_are_stripped() -> None:
    text = HEADER + QUOTE + "I bought the 17 inch model and like it.\n\n-- \nBob Smith, Example University"
    assert strip_boilerplate(text) == "I bought the 17 inch model and like it."
    # Text without any of it comes back unchanged, colons and all.
    plain = "Note: the card arrived.\nThanks: it works now"
    assert strip_boilerplate(plain) == plain
    assert strip_boilerplate("how do I top up?") == "how do I top up?"
    # A folded header line and X- headers belong to the header.
    assert strip_boilerplate("Subject: a very\n  long subject\nX-Mailer: Foo 1.0\n\nBody here.") == "Body here."
    assert strip_boilerplate(HEADER) == ""


def test_replies_sharing_header_lines_are_not_near_duplicates() -> None:
    bodies = ["I bought the 17 inch model and like it a lot.",
              "Stay away from that brand, mine died after a week.",
              "Has anyone tried the new graphics card drivers?"]
    texts = [HEADER + QUOTE + b for b in bodies] + [HEADER + QUOTE + bodies[0]]
    # Vectors that saw mostly the shared lines: every pair looks the same to them.
    emb = np.ones((len(texts), 4), dtype=np.float32) / 2.0
    groups = near_duplicate_groups(texts, emb, threshold=0.98, knn=knn_graph(emb, k=3))
    assert groups[0] == groups[3]  # the same body: a real duplicate
    assert len({groups[0], groups[1], groups[2]}) == 3
    # Texts without header or quoted lines keep the embedding links as before.
    short = ["where is my card", "where's my card", "top up failed"]
    close = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32)
    assert list(near_duplicate_groups(short, close, threshold=0.98)) == [0, 0, 1]
