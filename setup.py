"""Packaging driven by settings.ini (nbdev 2 layout)."""
from configparser import ConfigParser
import setuptools

assert int(setuptools.__version__.split(".")[0]) >= 36, "setuptools>=36 is required"

config = ConfigParser(delimiters=["="])
config.read("settings.ini", encoding="utf-8")
cfg = config["DEFAULT"]

licenses = {"mit": "MIT"}  # SPDX expression (setuptools deprecates license classifiers)
statuses = ["1 - Planning", "2 - Pre-Alpha", "3 - Alpha", "4 - Beta", "5 - Production/Stable", "6 - Mature", "7 - Inactive"]
py_versions = "3.10 3.11 3.12 3.13".split()
lic = licenses[cfg["license"].lower()]
min_python = cfg["min_python"]

requirements = cfg.get("requirements", "").split()
dev_requirements = cfg.get("dev_requirements", "").split()
extras = {k[len("extra_"):]: v.split() for k, v in cfg.items() if k.startswith("extra_")}
extras["dev"] = dev_requirements
extras["all"] = sorted({r for k, rs in extras.items() if k != "dev" for r in rs})

setuptools.setup(
    name=cfg["lib_name"],
    license=lic,
    classifiers=[
        "Development Status :: " + statuses[int(cfg["status"])],
        "Intended Audience :: " + cfg["audience"].title(),
        "Natural Language :: " + cfg["language"].title(),
    ] + [f"Programming Language :: Python :: {v}" for v in py_versions[py_versions.index(min_python):]],
    url=cfg["git_url"],
    packages=setuptools.find_packages(include=[cfg["lib_path"], cfg["lib_path"] + ".*"]),
    include_package_data=True,
    package_data={cfg["lib_path"]: ["assets/*", "assets/**/*"]},
    install_requires=requirements,
    extras_require=extras,
    python_requires=">=" + min_python,
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    zip_safe=False,
    entry_points={
        "console_scripts": cfg.get("console_scripts", "").split(),
        "nbdev": [f"{cfg.get('lib_path')}={cfg.get('lib_path')}._modidx:d"],
        "role_synthclip.plugins": cfg.get("plugins", "").split(),  # engines, judges, benchmarks registered by name
    },
    version=cfg["version"],
    description=cfg["description"],
    author=cfg["author"],
    author_email=cfg["author_email"],
    keywords=cfg["keywords"],
)
