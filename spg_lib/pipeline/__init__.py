"""Pipeline stages shared by DVC (`dvc.yaml`) and the Kubeflow components: each is a function of a config
dataclass and files, called by a thin `spg` sub-command."""
