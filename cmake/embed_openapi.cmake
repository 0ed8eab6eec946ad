# Embeds the OpenAPI documents src/api/openapi_v1.json and openapi_v2.json as
# `const char tsi_openapi_v1_json[]` and `tsi_openapi_v2_json[]` (NUL-terminated).
# Usage: cmake -DV1=<json> -DV2=<json> -DOUT=<c file> -P embed_openapi.cmake
file(WRITE ${OUT} "/* generated from src/api/openapi_v*.json by cmake/embed_openapi.cmake */\n")
foreach(v V1 V2)
  string(TOLOWER ${v} name)
  file(READ ${${v}} hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  file(APPEND ${OUT} "const char tsi_openapi_${name}_json[] = {${bytes}0x00};\n")
endforeach()
