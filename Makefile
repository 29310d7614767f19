# Everything runs inside the FEniCSx environment through docker/envrun
# (native if DOLFINx >= 0.9 is importable, else a cached Debian 13 chroot).
ENVRUN ?= docker/envrun
NP ?= 2
CONFIG ?= configs/demo.yaml
PYTEST = python3 -m pytest -q -p no:cacheprovider --strict-markers
MPIPYTEST = mpirun -n 2 python3 -m mpi4py -m pytest -q -p no:cacheprovider --strict-markers

.PHONY: env demo test test-serial test-mpi validate validate-serial validate-mpi run shell docs bench clean \
        image image-test image-save test-cluster

env:            ## build (once) and check the environment
	$(ENVRUN) python3 -c "import dolfinx, gmsh, pyvista; print('DOLFINx', dolfinx.__version__, '| gmsh', gmsh.__version__, '| pyvista', pyvista.__version__)"

demo:           ## mesh + run configs/demo.yaml (1 rank: 5k DOFs) into results/demo, then report (figures + animation)
	$(ENVRUN) python3 -m solver mesh configs/demo.yaml -o results/demo
	$(ENVRUN) python3 -m solver run configs/demo.yaml -o results/demo
	$(ENVRUN) python3 -m solver report results/demo
	@echo "demo: report in results/demo/report.txt; animation results/demo/figures/animation.gif; fields results/demo/fields.xdmf"

test: test-serial test-mpi  ## fast tier: every verification case at its smallest size, serial then 2 ranks

test-serial:
	$(ENVRUN) $(PYTEST) --durations=15 -m "not slow" tests

test-mpi:
	$(ENVRUN) $(MPIPYTEST) --durations=15 -m "mpi and not slow" tests

# Long tier: the whole suite including the slow tests (scenario runs, C4
# polycrystal, flaw ramps), serial then 2 ranks, recording every checked
# value; then validation/report.md (tests/validation_report.py). Both passes
# always run and the report is always written; the target fails if any did.
validate:
	rm -rf build/validation validation/figures
	status=0; \
	$(MAKE) validate-serial || status=1; \
	$(MAKE) validate-mpi || status=1; \
	$(ENVRUN) python3 tests/validation_report.py || status=1; \
	exit $$status

validate-serial:
	$(ENVRUN) env VALIDATION=1 $(PYTEST) --durations=30 tests

validate-mpi:
	$(ENVRUN) env VALIDATION=1 $(MPIPYTEST) --durations=30 -m mpi tests

run:            ## make run CONFIG=configs/x.yaml NP=4
	$(ENVRUN) mpirun -n $(NP) python3 -m solver run $(CONFIG)

shell:
	$(ENVRUN) bash

docs:           ## the documentation site -> build/docs/index.html (warnings are errors); regenerates docs/config.md
	$(ENVRUN) python3 -m sphinx -W --keep-going -q -b html docs build/docs
	@echo "docs: build/docs/index.html"

bench:
	$(ENVRUN) python3 benchmarks/potential_scaling.py

image:          ## build the image "nacrack" (docker, else buildah; see docker/README.md)
	docker/image build

image-test:     ## in the image: solver check, 2-rank demo steps, pvpython; scalars = envrun's to 1e-10
	docker/image test

image-save:     ## build/nacrack-image.tar for: apptainer build nacrack.sif docker-archive:build/nacrack-image.tar
	docker/image save

test-cluster:   ## single-node Slurm runs docker/slurm/nacrack.sbatch; restart 4 -> 2, 1 ranks
	$(ENVRUN) $(PYTEST) -m slow tests/test_cluster.py tests/test_restart_ranks.py

clean:
	rm -rf results build
