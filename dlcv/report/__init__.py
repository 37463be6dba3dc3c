"""The HW1 report, from the files run folders hold (`dlcv report`; see dlcv/report/build.py).

runs.py        find run folders, read them through dlcv.runfolder, give each a role (P1 A/B, P2, P3 A/B)
sections_p*.py one module per problem: the assignment's report questions in its order
common.py      shared blocks: formats, the "not available" rule, architecture, curves, throughput
doc.py         the document model; render.py writes it as Markdown once and makes the HTML from
               that Markdown; pdf.py prints the HTML (Chromium)
figures.py     the two charts the report draws itself (curves, per-class bars); assets.py the assets/ folder
provenance.py  data kind, hardware, date, software and command of each run
architecture.py  job-side: the architecture figure a run writes at training time (the report reads it)
"""
