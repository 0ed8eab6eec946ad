# Embeds src/api/openapi.json as `const char tsi_openapi_json[]` (NUL-terminated).
# Usage: cmake -DIN=<json> -DOUT=<c file> -P embed_openapi.cmake
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* generated from src/api/openapi.json by cmake/embed_openapi.cmake */\n"
                  "const char tsi_openapi_json[] = {${bytes}0x00};\n")
