# `sam build` builds the two functions through these targets (BuildMethod: makefile).
build-UploadFunction build-DeadLetterFunction:
	python3 infra/package_handler.py "$(ARTIFACTS_DIR)" --python-version 3.12 --platform manylinux2014_x86_64
