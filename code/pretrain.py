# GENERATED from chapters/*.ipynb by tools/export.py: edit the notebooks, not this file.





if __name__ == "__main__":
    main()
