"""The graded path: what hw1_1.sh, hw1_2.sh, hw1_3.sh and hw1_download_ckpt.sh run
(`python3 -m dlcv.graded predict p1|p2|p3 ...`, `... fetch`).

Every module loaded from here imports only the standard library and the course's inference
packages (torch, torchvision, numpy, Pillow; the list is COURSE_PACKAGES in guard.py): no
Lightning, OmegaConf, torchmetrics, timm or scikit-learn, which the graders' machines do not
have. tests/test_graded_env.py runs the scripts under the import guard and in an env with only
the course's packages at their oldest versions. One module per problem (p1, p2, p3), each with
`predict(checkpoint, *inputs, tta=False) -> exit code`; models.py rebuilds a model from a model.pt.
"""
