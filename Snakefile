# dualclip: power-set dual images and dual texts for compositional CLIP training.
# The rules live in rules/; helpers in rules/common.smk; config is validated by config/schema.yaml.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(
    config, "config/schema.yaml", set_default=False
)  # stages fill their own defaults


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/parse.smk"
include: "rules/detect.smk"
include: "rules/inpaint.smk"
include: "rules/rewrite.smk"
include: "rules/filter.smk"
include: "rules/train.smk"
include: "rules/eval.smk"
include: "rules/real_benchmarks.smk"
include: "rules/report.smk"


report: "report/workflow.rst"


rule all:
    default_target: True
    input:
        # every report output, so that one added to the rule is made for finished studies too
        rules.report.output,
        # every shard manifest: a withdrawn one (see below) reruns its shard even though
        # the results downstream of it exist
        plan.needed_manifests(config),


# a shard whose per-image files changed since its manifest reruns
withdraw_stale_shards()
