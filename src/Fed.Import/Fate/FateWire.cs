using Google.Protobuf;
using Fed.Core;
using Google.Protobuf.Reflection;

namespace Fed.Import.Fate;

/// <summary>
/// Strict protobuf reading: Google.Protobuf keeps unknown fields silently, but an importer that must never approximate
/// has to refuse a field it does not know (a newer FATE adding, say, a transform). This walks the wire format against
/// the message descriptor, recursing into sub-messages and map entries, and names the first field that is unknown,
/// has the wrong wire type, or is cut short.
/// </summary>
static class FateWire
{
    public static T ParseStrict<T>(byte[] bytes, MessageParser<T> parser, MessageDescriptor descriptor, string source) where T : IMessage<T>
    {
        Check(bytes, descriptor, descriptor.Name, source);
        try { return parser.ParseFrom(bytes); }
        catch (InvalidProtocolBufferException e)
        {
            throw new ModelFormatException(source, descriptor.Name, $"not a valid {descriptor.Name} protobuf: {e.Message}");
        }
    }

    static void Check(ReadOnlySpan<byte> bytes, MessageDescriptor d, string path, string source)
    {
        var input = new CodedInputStream(bytes.ToArray());
        try
        {
            uint tag;
            while ((tag = input.ReadTag()) != 0)
            {
                var number = WireFormat.GetTagFieldNumber(tag);
                var wire = WireFormat.GetTagWireType(tag);
                var field = d.FindFieldByNumber(number);
                if (field is null)
                    throw new ModelFormatException(source, $"{path}#{number}",
                        $"unknown field number {number} (wire type {wire}): this FATE model carries something Fed does not know and cannot represent exactly");
                var fieldPath = $"{path}.{field.Name}";
                var expected = ExpectedWireType(field);
                // Packed repeated scalars arrive length-delimited.
                var packedOk = field.IsRepeated && !field.IsMap && expected != WireFormat.WireType.LengthDelimited && wire == WireFormat.WireType.LengthDelimited;
                if (wire != expected && !packedOk)
                    throw new ModelFormatException(source, fieldPath, $"wire type {wire}, expected {expected}: not a {d.Name} (a different FATE component's parameter?)");
                if (field.FieldType == FieldType.Message)
                {
                    var inner = input.ReadBytes().ToByteArray();
                    Check(inner, field.MessageType, fieldPath, source);
                }
                else input.SkipLastField();
            }
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new ModelFormatException(source, path, $"truncated or corrupt protobuf: {e.Message}");
        }
    }

    static WireFormat.WireType ExpectedWireType(FieldDescriptor f) => f.FieldType switch
    {
        FieldType.Double or FieldType.Fixed64 or FieldType.SFixed64 => WireFormat.WireType.Fixed64,
        FieldType.Float or FieldType.Fixed32 or FieldType.SFixed32 => WireFormat.WireType.Fixed32,
        FieldType.String or FieldType.Bytes or FieldType.Message => WireFormat.WireType.LengthDelimited,
        FieldType.Group => WireFormat.WireType.StartGroup,
        _ => WireFormat.WireType.Varint,
    };
}
