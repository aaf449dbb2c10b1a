"""Dead-letter operations: what failed and why (``summary``), putting records back once the cause is fixed
(``replay``), and keeping dead letters sealed at rest (``seal``). ``letter`` reads one dead letter's headers.
"""
