"""Documents for the filter tests: hand-built ones that trip one rule each, and a mixed sample for golden tests."""

from __future__ import annotations

import random
from functools import lru_cache

GOOD = ("The river runs past the old mill and the children watch the boats from the bridge. "
        "In the morning the baker opens his shop, and the smell of bread fills the narrow street. "
        "Farmers bring their vegetables to the market square before the sun is high. "
        "Teachers walk to the school with books under their arms and coffee in their hands. "
        "By noon the town is busy with people who have errands to run and friends to meet. "
        "Later in the afternoon a light rain begins to fall over the hills beyond the valley. "
        "When evening comes, families gather for dinner and talk about the day that has passed.")
SHORT = ("The river runs past the mill. The baker opens his shop. Farmers bring vegetables. Teachers walk to school. "
         "Families gather for dinner. Rain falls later.")
LOREM = GOOD + "\nLorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod."
CURLY = GOOD + "\nThe set {a, b} is written with braces in this sentence."
NO_PUNCT = "\n".join(s.rstrip(".") for s in GOOD.split(". "))
DUP_PARA = "\n\n".join([GOOD.split(". ")[0] + "."] * 2 + [GOOD])
# A line C4 drops (it mentions javascript) without dropping the document: the text changes.
JAVASCRIPT = GOOD + "\nPlease enable JavaScript in your browser to see the comments below."

FRENCH = ("La ville se réveille lentement sous un ciel gris, et les boulangers ouvrent leurs portes avant l'aube. "
          "Les enfants traversent la place pour aller à l'école pendant que les marchands installent leurs étals.")
GERMAN = ("Die Stadt erwacht langsam unter einem grauen Himmel, und die Bäcker öffnen ihre Türen vor dem "
          "Morgengrauen. Die Kinder überqueren den Platz auf dem Weg zur Schule.")
SPANISH = ("La ciudad despierta lentamente bajo un cielo gris, y los panaderos abren sus puertas antes del amanecer. "
           "Los niños cruzan la plaza camino de la escuela mientras los comerciantes montan sus puestos.")

CODE = '''import os


def walk(root):
    """Yield every file under root."""
    for base, dirs, files in os.walk(root):
        for name in files:
            yield os.path.join(base, name)
'''

EDGE_CASES = [
    "",
    "   ",
    "\n\n\n",
    "word",
    GOOD + " [1] [edit] [citation needed]",
    GOOD.replace(". ", ".\n\n") + "\n\n   \n\t\n",
    "  " + GOOD + "  ",
    GOOD + "\nThis site uses cookies. Read our privacy policy and terms of use here now.",
    GOOD + "\n" + "x" * 1200 + " is a very long word indeed here.",
    GOOD + "\nThe IS_ALPHA string once broke the tokenizer, it is here on purpose.",
    GOOD + "\n... and so it goes ...\n• first bullet point here\n- second bullet point here",
    GOOD.replace(".", "…"),
    GOOD + "\nΤο ποτάμι κυλά δίπλα στον παλιό μύλο. 川は古い水車小屋のそばを流れている。",
    "#" * 40 + "\n" + GOOD,
    GOOD + "\nShe said \"yes.\" He asked 'why?' They laughed!",
    "\n".join(["Home", "About", "Contact", "Login"] * 10),
    " ".join(["casino bonus free"] * 60),
]


@lru_cache(maxsize=2)
def mixed_sample(seed: int = 0) -> tuple[tuple[str, str], ...]:
    """(id, text) pairs: the demo corpus's kinds of documents (web prose, spam, boilerplate, foreign pages, code,
    reference docs, licenses), the hand-built documents and edge cases."""
    from curate import demo

    rng = random.Random(seed)
    texts = [d["text"] for d in demo._web_docs(rng, 40)]
    texts += [d["text"] for d in demo._spam_docs(rng, 12)]
    texts += [d["text"] for d in demo._foreign_docs(rng, 2)]
    texts += [d["text"] for d in demo._code_docs(rng, 8)]
    texts += [d["text"] for d in demo._docs_docs()[:: 12]]
    texts += [d["text"] for d in demo._legal_docs()[:: 15]]
    texts += [GOOD, SHORT, LOREM, CURLY, NO_PUNCT, DUP_PARA, JAVASCRIPT, FRENCH, GERMAN, SPANISH, CODE, *EDGE_CASES]
    return tuple((f"doc-{i:04d}", t) for i, t in enumerate(texts))
