"""The HW1 report, built from run folders only (`dlcv report`; see dlcv/report/build.py).

runs.py        find run folders, read their artefacts tolerantly, give each a role (P1 A/B, P2, P3 A/B)
sections_p*.py one module per problem: the assignment's report questions in its order
common.py      shared blocks: formats, error isolation, training curves, throughput, architecture
architecture.py  model -> figure (torchview + Graphviz dot, else a matplotlib flow), layer table
figures.py     the charts and image grids the report draws, assets.py the assets/ folder
doc.py         the document model; html.py and markdown.py render it; pdf.py prints it (Chromium)
provenance.py  run name, config, command, hardware, date, demo/real for every number
"""
