internal import SwiftProtobuf
import Foundation

/// Writes an `ExportedEncoder` as an ONNX model with the types generated from `onnx.proto`.
///
/// Opset 17, standard ops only. GroupNorm is written as its decomposition (Reshape to
/// `[n, groups, -1]`, ReduceMean, Sub, Mul, ReduceMean, Add ε, Sqrt, Div, Reshape back, per-channel
/// Mul and Add), which every runtime supports; GroupNormalization proper needs opset 18+ and its
/// semantics changed in 21.
struct OnnxGraphWriter {
    static let opset: Int64 = 17
    /// IR version 8 is the one that goes with opset 17.
    static let irVersion: Int64 = 8

    private var graph = Onnx_GraphProto()
    private var counter = 0

    static func model(for encoder: ExportedEncoder, metadata: [String: String]) throws -> [UInt8] {
        var writer = OnnxGraphWriter()
        writer.graph.name = "\(encoder.modality.rawValue)_encoder"
        writer.graph.input = [valueInfo(encoder.inputName, ["batch"] + encoder.inputShape.map { $0 as Any })]
        let features = writer.add(encoder.backbone, input: encoder.inputName)
        _ = writer.node("Identity", [features], output: ExportedEncoder.outputName)
        writer.graph.output = [valueInfo(ExportedEncoder.outputName, ["batch", encoder.featureDimension])]
        var model = Onnx_ModelProto()
        model.irVersion = irVersion
        model.producerName = "ssl-daemon"
        model.docString = "ssl-daemon \(encoder.modality.rawValue) encoder (\(encoder.architecture.rawValue)), backbone without projection head"
        var opset = Onnx_OperatorSetIdProto()
        opset.domain = ""
        opset.version = Self.opset
        model.opsetImport = [opset]
        model.graph = writer.graph
        model.metadataProps = metadata.keys.sorted().map { key in
            var entry = Onnx_StringStringEntryProto()
            entry.key = key
            entry.value = metadata[key]!
            return entry
        }
        return try model.serializedBytes()
    }

    /// A float32 tensor value description; a String dimension is symbolic.
    private static func valueInfo(_ name: String, _ dims: [Any]) -> Onnx_ValueInfoProto {
        var shape = Onnx_TensorShapeProto()
        shape.dim = dims.map { d in
            var dim = Onnx_TensorShapeProto.Dimension()
            if let symbol = d as? String { dim.dimParam = symbol } else { dim.dimValue = Int64(d as! Int) }
            return dim
        }
        var tensor = Onnx_TypeProto.Tensor()
        tensor.elemType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        tensor.shape = shape
        var type = Onnx_TypeProto()
        type.tensorType = tensor
        var info = Onnx_ValueInfoProto()
        info.name = name
        info.type = type
        return info
    }

    // MARK: - Building blocks

    private mutating func fresh(_ hint: String) -> String {
        counter += 1
        return "\(hint)_\(counter)"
    }

    @discardableResult
    private mutating func initializer(_ name: String, dims: [Int], floats: [Float]) -> String {
        var t = Onnx_TensorProto()
        t.name = name
        t.dims = dims.map(Int64.init)
        t.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        // raw_data is little-endian, as the format specifies and our hosts are.
        t.rawData = floats.withUnsafeBytes { Data($0) }
        graph.initializer.append(t)
        return name
    }

    private mutating func constantInts(_ hint: String, _ values: [Int]) -> String {
        var t = Onnx_TensorProto()
        t.name = fresh(hint)
        t.dims = [Int64(values.count)]
        t.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
        t.int64Data = values.map(Int64.init)
        graph.initializer.append(t)
        return t.name
    }

    private static func attribute(_ name: String, ints: [Int]) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .ints
        a.ints = ints.map(Int64.init)
        return a
    }

    private static func attribute(_ name: String, int: Int) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .int
        a.i = Int64(int)
        return a
    }

    private mutating func node(_ op: String, _ inputs: [String], attributes: [Onnx_AttributeProto] = [], output: String? = nil) -> String {
        var n = Onnx_NodeProto()
        n.opType = op
        n.name = fresh(op)
        n.input = inputs
        n.output = [output ?? fresh(op.lowercased())]
        n.attribute = attributes
        graph.node.append(n)
        return n.output[0]
    }

    // MARK: - Layers

    private mutating func add(_ layer: Layer, input: String) -> String {
        switch layer {
        case let s as Sequential:
            return s.layers.reduce(input) { add($1, input: $0) }
        case let conv as Conv2d:
            var inputs = [input, initializer(conv.weight.name, dims: [conv.outChannels, conv.inChannels, conv.kernel, conv.kernel], floats: conv.pytorchWeight)]
            if let b = conv.bias { inputs.append(initializer(b.name, dims: b.shape, floats: b.value)) }
            return node("Conv", inputs, attributes: [
                Self.attribute("kernel_shape", ints: [conv.kernel, conv.kernel]),
                Self.attribute("strides", ints: [conv.stride, conv.stride]),
                Self.attribute("pads", ints: [conv.padding, conv.padding, conv.padding, conv.padding]),
            ])
        case let gn as GroupNorm:
            return groupNorm(gn, input: input)
        case is ReLU:
            return node("Relu", [input])
        case let block as ResidualBlock:
            let main = add(block.main, input: input)
            let shortcut = block.shortcut.map { add($0, input: input) } ?? input
            return node("Relu", [node("Add", [main, shortcut])])
        case is GlobalAveragePool:
            return node("Flatten", [node("GlobalAveragePool", [input])], attributes: [Self.attribute("axis", int: 1)])
        default:
            preconditionFailure("OnnxGraphWriter: no ONNX form for \(type(of: layer))")
        }
    }

    private mutating func groupNorm(_ gn: GroupNorm, input: String) -> String {
        let shape = node("Shape", [input])
        let grouped = node("Reshape", [input, constantInts("gn_groups", [0, gn.groups, -1])])
        let axes = [Self.attribute("axes", ints: [2]), Self.attribute("keepdims", int: 1)]
        let mean = node("ReduceMean", [grouped], attributes: axes)
        let centred = node("Sub", [grouped, mean])
        let variance = node("ReduceMean", [node("Mul", [centred, centred])], attributes: axes)
        let epsilon = initializer(fresh("gn_epsilon"), dims: [], floats: [gn.epsilon])
        let normalised = node("Div", [centred, node("Sqrt", [node("Add", [variance, epsilon])])])
        let restored = node("Reshape", [normalised, shape])
        let gamma = initializer(gn.gamma.name, dims: [gn.channels, 1, 1], floats: gn.gamma.value)
        let beta = initializer(gn.beta.name, dims: [gn.channels, 1, 1], floats: gn.beta.value)
        let y = node("Add", [node("Mul", [restored, gamma]), beta])
        return gn.relu ? node("Relu", [y]) : y
    }
}
