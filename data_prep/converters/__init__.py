"""Dataset converters: MicroLens / Short-Video interaction files and titles -> RecBole atomic files."""
